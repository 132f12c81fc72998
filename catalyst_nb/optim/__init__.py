"""Step-wise optimizers over prompts: gradient descent on soft context, and the catalyst that interleaves
it with the LLM optimizer (which lives in :mod:`catalyst_nb.llm`, since it needs no torch)."""
from __future__ import annotations

from catalyst_nb.optim.gradient import (
    GradientConfig,
    GradientPromptOptimizer,
    NonFiniteLossError,
    ProgressBar,
    coop_learning_rate,
)
from catalyst_nb.optim.approval import ApprovalPending, AwaitingApproval
from catalyst_nb.optim.catalyst import CatalystOptimizer
from catalyst_nb.optim.catalyst_config import PRESETS, CatalystConfig
from catalyst_nb.optim.events import RoundEvent

__all__ = ["ApprovalPending", "AwaitingApproval", "CatalystConfig", "CatalystOptimizer", "PRESETS", "RoundEvent",
           "GradientConfig", "GradientPromptOptimizer", "NonFiniteLossError", "ProgressBar", "coop_learning_rate"]
