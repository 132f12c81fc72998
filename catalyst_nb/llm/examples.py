"""A ready-made Fashion-MNIST task description and an illustrative scored history.

For demos, the latency script and replayed tests: the numbers are plausible values of the kind a
small CLIP reaches on Fashion-MNIST, not measurements. Real runs build their history from the
gradient stage's projected prompts.
"""

from __future__ import annotations

from typing import Sequence

from catalyst_nb.data.fashion_mnist import FASHION_MNIST_CLASSNAMES as FASHION_MNIST_CLASSES

from .history import ScoredTemplate
from .meta_prompt import TaskDescription

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_TASK", "describe_task", "example_fashion_mnist_history"]


FASHION_MNIST_TASK = TaskDescription(
    dataset="Fashion-MNIST",
    images="28x28 grayscale photos of single clothing items, shoes and bags on a black background",
    classnames=FASHION_MNIST_CLASSES,
)


def describe_task(dataset: str | None, classnames: Sequence[str]) -> TaskDescription:
    """The task the LLM is told about, by one rule for every run: a dataset whose name says it is
    Fashion-MNIST gets its written description, any other its name and "photos"; the classes are always
    the training set's (a base-to-new run names only its base classes)."""
    name = dataset or "image classification"
    known = FASHION_MNIST_TASK if "fashion" in name.lower() else TaskDescription(name, "photos", tuple(classnames))
    return TaskDescription(known.dataset, known.images, tuple(classnames))


def example_fashion_mnist_history() -> list[ScoredTemplate]:
    """Hand-written templates with illustrative losses and accuracies (not measured)."""
    return [
        ScoredTemplate("a photo of a {}.", 1.12, 0.62, source="init"),
        ScoredTemplate("a blurry photo of a {}.", 1.31, 0.55, source="illustrative"),
        ScoredTemplate("a black and white photo of the {}, a type of clothing.", 0.94, 0.68, source="illustrative"),
        ScoredTemplate("itap of a {}.", 1.45, 0.49, source="illustrative"),
        ScoredTemplate("a low resolution photo of the {}.", 1.05, 0.64, source="illustrative"),
    ]
