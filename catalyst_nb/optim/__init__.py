"""Step-wise optimizers over prompts: gradient descent on soft context, and the catalyst that interleaves
it with the LLM optimizer (which lives in :mod:`catalyst_nb.llm`, since it needs no torch).

Names are imported on first use, so the torch-free modules here (settings, events) can be imported
without torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from catalyst_nb.lazy import lazy_getattr

_EXPORTS = {
    **dict.fromkeys(["GradientConfig", "GradientPromptOptimizer", "NonFiniteLossError", "ProgressBar",
                     "coop_learning_rate"], "catalyst_nb.optim.gradient"),
    "ApprovalPending": "catalyst_nb.optim.approval",
    **dict.fromkeys(["AwaitingApproval", "RoundEvent"], "catalyst_nb.optim.events"),
    **dict.fromkeys(["CatalystOptimizer", "Phase"], "catalyst_nb.optim.catalyst"),
    **dict.fromkeys(["PRESETS", "CatalystConfig"], "catalyst_nb.optim.catalyst_config"),
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("catalyst_nb.optim", _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from catalyst_nb.optim.approval import ApprovalPending
    from catalyst_nb.optim.catalyst import CatalystOptimizer, Phase
    from catalyst_nb.optim.catalyst_config import PRESETS, CatalystConfig
    from catalyst_nb.optim.events import AwaitingApproval, RoundEvent
    from catalyst_nb.optim.gradient import (GradientConfig, GradientPromptOptimizer, NonFiniteLossError, ProgressBar,
                                            coop_learning_rate)
