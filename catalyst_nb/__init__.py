"""catalyst_nb: notebook-first CLIP prompt tuning, gradient descent and an LLM optimizer working together."""
from __future__ import annotations

__version__ = "0.1.0"
