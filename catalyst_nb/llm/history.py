"""Scored templates: the only thing the LLM side needs to know about the gradient side.

A template is a string with ``{}`` where the class name goes ("a photo of a {}."); a template without
``{}`` gets the class name at the end. The gradient optimizer produces these from projected prompts
and their scores; the LLM optimizer reads them, and turns its own scored proposals back into them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from catalyst_nb.templates import PLACEHOLDER, fill_template, normalize_template

__all__ = ["PLACEHOLDER", "ScoredTemplate", "fill_template", "normalize_template"]

@dataclass(frozen=True)
class ScoredTemplate:
    """A template with its loss (lower is better) and accuracy (in [0, 1]) on a scoring split."""

    template: str
    loss: float
    accuracy: float
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.template, str) or not self.template.strip():
            raise ValueError(f"ScoredTemplate.template must be a non-empty str, got {self.template!r}")
        if not math.isfinite(self.loss):
            raise ValueError(f"ScoredTemplate.loss must be finite, got {self.loss!r} for {self.template!r}")
        if not (0.0 <= self.accuracy <= 1.0):
            raise ValueError(f"ScoredTemplate.accuracy must be in [0, 1], got {self.accuracy!r} for {self.template!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"template": self.template, "loss": self.loss, "accuracy": self.accuracy, "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoredTemplate:
        return cls(template=data["template"], loss=float(data["loss"]), accuracy=float(data["accuracy"]),
                   source=data["source"])
