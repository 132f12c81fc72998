"""The Fashion-MNIST subset that ships inside catalyst_nb, so demos and tests need nothing but PyPI.

``fashion_mnist_embedded.npz`` holds three splits as compressed uint8 arrays:

* ``train``: 64 images per class from Fashion-MNIST's *train* split, the few-shot pool (16 shots x 3 seeds);
* ``val``: 32 further images per class from the same split, for scoring candidate prompts;
* ``test``: 300 images per class from Fashion-MNIST's own *test* split.

``fashion_mnist_embedded.json`` records how they were drawn (seed, counts, sha256 of the source IDX files)
and the sha256 of the npz, which is checked on load so that a damaged install fails loudly instead of
giving quietly wrong accuracies. ``scripts/build_embedded_data.py`` rebuilds both from the IDX files.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .dataset import ImageDataset
from .errors import CorruptDataError, DatasetNotFoundError
from .fashion_mnist import FASHION_MNIST_CLASSNAMES
from .sampling import rank_key
from .sources import ArrayImageSource

__all__ = [
    "EMBEDDED_SPLITS",
    "EMBEDDED_NPZ",
    "EMBEDDED_METADATA",
    "EMBEDDED_FORMAT",
    "select_embedded_indices",
    "build_embedded_arrays",
    "write_embedded",
    "read_embedded_arrays",
    "embedded_dataset",
    "load_embedded_fashion_mnist",
]

EMBEDDED_SPLITS: tuple[str, ...] = ("train", "val", "test")
EMBEDDED_NPZ = "fashion_mnist_embedded.npz"
EMBEDDED_METADATA = "fashion_mnist_embedded.json"
EMBEDDED_FORMAT = "catalyst_nb.fashion_mnist_embedded/1"
# Which Fashion-MNIST split each embedded split is drawn from; it is also the prefix of the image ids.
ORIGIN: Mapping[str, str] = {"train": "train", "val": "train", "test": "test"}


def select_embedded_indices(
    labels: np.ndarray, *, origin: str, seed: int, counts: tuple[int, ...]
) -> list[np.ndarray]:
    """Disjoint, per-class draws from one Fashion-MNIST split.

    Within each class the images are ranked by ``sha256(f"{seed}:{origin}/{index:05d}")`` (the same rule as
    :func:`~catalyst_nb.data.sampling.few_shot`, independent of numpy's RNG); the first ``counts[0]`` go to
    the first draw, the next ``counts[1]`` to the second, and so on. Each draw is sorted by index.
    """
    labels = np.asarray(labels)
    draws: list[list[int]] = [[] for _ in counts]
    for label in range(len(FASHION_MNIST_CLASSNAMES)):
        members = np.flatnonzero(labels == label).tolist()
        if len(members) < sum(counts):
            raise ValueError(
                f"Fashion-MNIST {origin}: class {FASHION_MNIST_CLASSNAMES[label]!r} has {len(members)} images, "
                f"{sum(counts)} needed"
            )
        ranked = sorted(members, key=lambda index: rank_key(seed, f"{origin}/{index:05d}"))
        start = 0
        for draw, count in zip(draws, counts):
            draw.extend(ranked[start : start + count])
            start += count
    return [np.array(sorted(draw), dtype=np.int32) for draw in draws]


def build_embedded_arrays(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    seed: int,
    train_per_class: int = 64,
    val_per_class: int = 32,
    test_per_class: int = 300,
) -> dict[str, np.ndarray]:
    """The arrays of the embedded file: ``<split>_images``, ``<split>_labels``, ``<split>_indices``."""
    train_draw, val_draw = select_embedded_indices(
        train_labels, origin="train", seed=seed, counts=(train_per_class, val_per_class)
    )
    (test_draw,) = select_embedded_indices(test_labels, origin="test", seed=seed, counts=(test_per_class,))
    arrays: dict[str, np.ndarray] = {}
    for split, images, labels, draw in (
        ("train", train_images, train_labels, train_draw),
        ("val", train_images, train_labels, val_draw),
        ("test", test_images, test_labels, test_draw),
    ):
        arrays[f"{split}_images"] = np.ascontiguousarray(images[draw], dtype=np.uint8)
        arrays[f"{split}_labels"] = np.ascontiguousarray(labels[draw], dtype=np.uint8)
        arrays[f"{split}_indices"] = draw
    return arrays


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_embedded(
    arrays: Mapping[str, np.ndarray], out_dir: str | os.PathLike[str], *, provenance: Mapping[str, Any]
) -> tuple[Path, Path]:
    """Write the npz and its JSON (``provenance`` plus array shapes, counts and checksums) to ``out_dir``."""
    out_dir = Path(out_dir)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{key: arrays[key] for key in sorted(arrays)})
    payload = buffer.getvalue()
    counts = {}
    for split in EMBEDDED_SPLITS:
        labels = arrays[f"{split}_labels"]
        counts[split] = {
            "origin": ORIGIN[split],
            "total": int(labels.shape[0]),
            "per_class": [int(n) for n in np.bincount(labels, minlength=len(FASHION_MNIST_CLASSNAMES))],
        }
    metadata = {
        "format": EMBEDDED_FORMAT,
        **provenance,
        "classnames": list(FASHION_MNIST_CLASSNAMES),
        "counts": counts,
        "arrays": {
            key: {
                "shape": list(arrays[key].shape),
                "dtype": str(arrays[key].dtype),
                "sha256": _sha256(arrays[key].tobytes()),
            }
            for key in sorted(arrays)
        },
        "npz_file": EMBEDDED_NPZ,
        "npz_bytes": len(payload),
        "npz_sha256": _sha256(payload),
    }
    npz_path = out_dir / EMBEDDED_NPZ
    json_path = out_dir / EMBEDDED_METADATA
    npz_path.write_bytes(payload)
    json_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return npz_path, json_path


def _parse_embedded(payload: bytes, metadata_text: str, where: str) -> dict[str, np.ndarray]:
    try:
        metadata = json.loads(metadata_text)
    except json.JSONDecodeError as error:
        raise CorruptDataError(f"{where}: metadata is not valid JSON: {error}") from error
    if not isinstance(metadata, dict) or metadata.get("format") != EMBEDDED_FORMAT:
        raise CorruptDataError(f"{where}: metadata format is not {EMBEDDED_FORMAT!r}")
    actual = _sha256(payload)
    if actual != metadata.get("npz_sha256"):
        raise CorruptDataError(
            f"{where}: embedded Fashion-MNIST data is damaged: sha256 {actual} does not match "
            f"{metadata.get('npz_sha256')} recorded in {EMBEDDED_METADATA}; reinstall catalyst_nb or rebuild "
            "the files with scripts/build_embedded_data.py"
        )
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    for split in EMBEDDED_SPLITS:
        for suffix in ("images", "labels", "indices"):
            if f"{split}_{suffix}" not in arrays:
                raise CorruptDataError(f"{where}: array {split}_{suffix!s} missing from the npz")
        if arrays[f"{split}_images"].shape[0] != metadata["counts"][split]["total"]:
            raise CorruptDataError(f"{where}: {split} image count differs from the metadata")
    return arrays


def read_embedded_arrays(
    npz_path: str | os.PathLike[str], metadata_path: str | os.PathLike[str]
) -> dict[str, np.ndarray]:
    """The arrays of an embedded npz, after checking its sha256 against ``metadata_path``."""
    npz_path, metadata_path = Path(npz_path), Path(metadata_path)
    for path in (npz_path, metadata_path):
        if not path.is_file():
            raise DatasetNotFoundError(f"embedded Fashion-MNIST file not found: {path}")
    return _parse_embedded(npz_path.read_bytes(), metadata_path.read_text(encoding="utf-8"), str(npz_path))


def embedded_dataset(arrays: Mapping[str, np.ndarray], split: str) -> ImageDataset:
    """The :class:`ImageDataset` of ``split`` from embedded arrays (ids name the original images)."""
    if split not in EMBEDDED_SPLITS:
        raise ValueError(f"embedded Fashion-MNIST split must be one of {list(EMBEDDED_SPLITS)}, got {split!r}")
    ids = tuple(f"{ORIGIN[split]}/{int(index):05d}" for index in arrays[f"{split}_indices"])
    return ImageDataset(
        name=f"fashion-mnist-embedded/{split}",
        classnames=FASHION_MNIST_CLASSNAMES,
        labels=tuple(int(label) for label in arrays[f"{split}_labels"]),
        ids=ids,
        source=ArrayImageSource(arrays[f"{split}_images"], ids),
    )


@functools.lru_cache(maxsize=1)
def _packaged_arrays() -> dict[str, np.ndarray]:
    package = resources.files(__package__)
    npz, metadata = package / EMBEDDED_NPZ, package / EMBEDDED_METADATA
    for item, name in ((npz, EMBEDDED_NPZ), (metadata, EMBEDDED_METADATA)):
        if not item.is_file():
            raise DatasetNotFoundError(
                f"{name} is missing from the installed catalyst_nb.data package; reinstall catalyst_nb "
                "(a source checkout rebuilds it with scripts/build_embedded_data.py)"
            )
    return _parse_embedded(npz.read_bytes(), metadata.read_text(encoding="utf-8"), f"catalyst_nb.data/{EMBEDDED_NPZ}")


@functools.lru_cache(maxsize=None)
def _packaged_dataset(split: str) -> ImageDataset:
    return embedded_dataset(_packaged_arrays(), split)


def load_embedded_fashion_mnist(split: Literal["train", "val", "test"]) -> ImageDataset:
    """The shipped Fashion-MNIST subset ``split``: ``"train"`` (64/class), ``"val"`` (32/class), ``"test"`` (300/class).

    Named ``"fashion-mnist-embedded/<split>"``; ids are ``"train/01234"`` or ``"test/00042"`` after the
    original Fashion-MNIST split and index. Loaded and checked once per process; the dataset is immutable,
    so the same object is returned on every call.
    """
    if split not in EMBEDDED_SPLITS:
        raise ValueError(f"embedded Fashion-MNIST split must be one of {list(EMBEDDED_SPLITS)}, got {split!r}")
    return _packaged_dataset(split)
