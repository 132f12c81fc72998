"""Few-shot draws and CoOp's base/new class split.

The few-shot draw ranks the images of each class by ``sha256(f"{seed}:{id}")`` and keeps the first ``k``.
Unlike ``random.sample`` over a list (CoOp's way), the result depends only on the ids, the labels and the
seed: reordering files on disk, listing a folder on another file system, or adding images of other classes
does not change which images are chosen.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from .dataset import ImageDataset

__all__ = ["few_shot", "base_new_split", "split_base_new", "rank_key"]


def rank_key(seed: int, image_id: str) -> str:
    """The sort key of ``image_id`` for ``seed``: a hex sha256, so ties are practically impossible."""
    return hashlib.sha256(f"{seed}:{image_id}".encode()).hexdigest()


def _check_int(value: object, what: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def few_shot(dataset: ImageDataset, *, shots: int, seed: int) -> ImageDataset:
    """``shots`` images of every class, chosen deterministically from ``seed`` and the image ids.

    The result is ordered by class, then by rank, so it is identical for any ordering of ``dataset``.
    A class with fewer than ``shots`` images is an error naming the class and its count: silently
    training on fewer shots would make runs incomparable.
    """
    _check_int(shots, "shots", minimum=1)
    _check_int(seed, "seed")
    per_class: list[list[int]] = [[] for _ in dataset.classnames]
    for position, label in enumerate(dataset.labels):
        per_class[label].append(position)
    short = [
        f"{dataset.classnames[c]!r} ({len(positions)})"
        for c, positions in enumerate(per_class)
        if len(positions) < shots
    ]
    if short:
        raise ValueError(
            f"{dataset.name}: {shots} shots per class requested, but these classes have fewer images: "
            + ", ".join(short)
        )
    chosen: list[int] = []
    for positions in per_class:
        ranked = sorted(positions, key=lambda p: rank_key(seed, dataset.ids[p]))
        chosen.extend(ranked[:shots])
    return dataset.subset(chosen, name=f"{dataset.name}/{shots}shot-seed{seed}")


def base_new_split(classnames: Sequence[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """CoOp's base-to-new protocol: the first ``ceil(n / 2)`` classes are base, the rest new."""
    n_classes = len(classnames)
    if n_classes < 2:
        raise ValueError(f"a base/new split needs at least 2 classes, got {n_classes}: {list(classnames)}")
    n_base = math.ceil(n_classes / 2)
    return tuple(range(n_base)), tuple(range(n_base, n_classes))


def split_base_new(dataset: ImageDataset) -> tuple[ImageDataset, ImageDataset]:
    """``dataset`` restricted to its base classes and to its new classes, each relabelled from 0."""
    base, new = base_new_split(dataset.classnames)
    return (
        dataset.restrict_classes(base, name=f"{dataset.name}/base"),
        dataset.restrict_classes(new, name=f"{dataset.name}/new"),
    )
