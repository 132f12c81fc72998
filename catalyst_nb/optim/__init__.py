"""Step-wise optimizers over prompts: gradient descent on soft context, and (separately) an LLM."""
from __future__ import annotations

from catalyst_nb.optim.gradient import (
    GradientConfig,
    GradientPromptOptimizer,
    NonFiniteLossError,
    ProgressBar,
    coop_learning_rate,
)
from catalyst_nb.optim.llm_optimizer import LLMPromptOptimizer, LLMRound, Proposal

__all__ = ["LLMPromptOptimizer", "LLMRound", "Proposal", "GradientConfig", "GradientPromptOptimizer", "NonFiniteLossError", "ProgressBar", "coop_learning_rate"]
