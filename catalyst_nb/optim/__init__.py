"""Step-wise optimizers over prompts: gradient descent on soft context, and (separately) an LLM."""
from __future__ import annotations

from catalyst_nb.optim.gradient import (
    GradientConfig,
    GradientPromptOptimizer,
    NonFiniteLossError,
    ProgressBar,
    coop_learning_rate,
)

__all__ = ["GradientConfig", "GradientPromptOptimizer", "NonFiniteLossError", "ProgressBar", "coop_learning_rate"]
