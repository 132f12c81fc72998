"""Accuracy of a text classifier over cached image features, and the summaries the papers report.

A "classifier" here is just a ``[n_classes, dim]`` matrix of normalized text features: from a soft
prompt, from one hard template, or from an ensemble of templates.  Keeping evaluation a function of that
matrix means the gradient optimizer, the LLM candidates and the zero-shot baselines are all measured by
the same code.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from catalyst_nb.backbone import ClipBackbone
from catalyst_nb.features import FeatureSet
from catalyst_nb.template_scoring import encode_templates

__all__ = ["EvalResult", "evaluate_classifier", "evaluate_templates", "harmonic_mean", "SeedSummary", "summarize_seeds"]


@dataclass(frozen=True)
class EvalResult:
    """Accuracy (0-1) and mean cross-entropy over a split, with per-class accuracy."""

    accuracy: float
    loss: float
    n: int
    per_class: tuple[float, ...]

    def __str__(self) -> str:
        return f"accuracy {100 * self.accuracy:.2f}% (loss {self.loss:.4f}, n={self.n})"


@torch.no_grad()
def evaluate_classifier(
    class_weights: torch.Tensor, features: FeatureSet, *, logit_scale: float | torch.Tensor, batch_size: int = 4096
) -> EvalResult:
    """Top-1 accuracy and loss of ``logit_scale * features @ class_weights.T`` against the labels."""
    n_classes = class_weights.shape[0]
    if n_classes != len(features.classnames):
        raise ValueError(f"{n_classes} class weights for {len(features.classnames)} classes in {features.name!r}")
    weights = F.normalize(class_weights.float(), dim=-1)
    correct = torch.zeros(n_classes)
    total = torch.zeros(n_classes)
    loss_sum = 0.0
    scale = float(logit_scale)
    for start in range(0, len(features), batch_size):
        feats = features.features[start : start + batch_size].to(weights.device).float()
        labels = features.labels[start : start + batch_size].to(weights.device)
        logits = scale * feats @ weights.T
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        hit = (logits.argmax(-1) == labels).float().cpu()
        correct.index_add_(0, labels.cpu(), hit)
        total.index_add_(0, labels.cpu(), torch.ones_like(hit))
    n = int(total.sum())
    per_class = tuple(float(c / t) if t > 0 else float("nan") for c, t in zip(correct, total))
    return EvalResult(accuracy=float(correct.sum() / n), loss=loss_sum / n, n=n, per_class=per_class)


def evaluate_templates(clip: ClipBackbone, templates: str | Sequence[str], features: FeatureSet) -> EvalResult:
    """Zero-shot accuracy of hard prompt template(s) (``{}`` marks the class name; several are averaged)."""
    if isinstance(templates, str):
        templates = [templates]
    weights = encode_templates(clip, list(templates), features.classnames)
    return evaluate_classifier(weights, features, logit_scale=clip.logit_scale)


def harmonic_mean(base: float, new: float) -> float:
    """CoOp/CoCoOp's base-to-new summary: ``2 b n / (b + n)`` (0 when either is 0)."""
    if base < 0 or new < 0:
        raise ValueError(f"accuracies must be >= 0, got base={base}, new={new}")
    return 0.0 if base + new == 0 else 2 * base * new / (base + new)


@dataclass(frozen=True)
class SeedSummary:
    """Mean and sample standard deviation over seeds (std is 0 for a single seed)."""

    mean: float
    std: float
    values: tuple[float, ...]

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f} (n={len(self.values)})"


def summarize_seeds(values: Sequence[float]) -> SeedSummary:
    if not values:
        raise ValueError("summarize_seeds needs at least one value")
    vals = tuple(float(v) for v in values)
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    if any(math.isnan(v) for v in vals):
        raise ValueError(f"NaN among seed results {vals}")
    return SeedSummary(mean=statistics.fmean(vals), std=std, values=vals)
