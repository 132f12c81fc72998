"""Image features, computed once and cached on disk.

The image tower is frozen during prompt tuning, so every image's feature is a constant: computing it once
turns a CoOp step from "run the image tower on 32 images" into "look up 32 rows", which is what makes
tuning interactive on a CPU.  CoOp trains with random-crop and flip augmentation; we keep that by caching
``views`` augmented copies per training image and drawing one per image per step.

The cache key covers everything that changes the numbers — the image tower's weights and preprocessing
(:attr:`ClipBackbone.image_weights_id`), the exact list of images and labels (the dataset fingerprint),
the augmentation recipe, the number of views and their seed — so a changed input can never hit a stale
entry.  Entries are written atomically and verified on read (key, shapes, labels and a checksum); a
corrupt or stale entry is logged, rebuilt and never used.  A cache that cannot be written (full disk,
read-only folder, a file where the folder should be) costs only the cache: the computed features are
returned, no temporary file is left, and a :class:`CacheWriteWarning` says why.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from tqdm.auto import tqdm

from catalyst_nb.backbone import ClipBackbone
from catalyst_nb.paths import cache_root
from catalyst_nb.state_io import atomic_write_bytes

__all__ = ["Augmentation", "CacheWriteWarning", "FeatureSet", "extract_features", "feature_cache_key",
           "default_cache_dir"]

log = logging.getLogger(__name__)
_FORMAT = 1


class CacheWriteWarning(UserWarning):
    """Features were computed but could not be saved in the cache (they are still returned)."""


class _Dataset(Protocol):
    name: str
    classnames: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int: ...
    def load_image(self, index: int) -> Image.Image: ...
    def fingerprint(self) -> str: ...


@dataclass(frozen=True)
class Augmentation:
    """CoOp-style training augmentation applied to the raw image before the model's preprocessing.

    A random crop covering ``scale`` of the area (aspect ratio in ``ratio``) resized back to the image's
    size, then a horizontal flip with probability 0.5 when ``flip``.
    """

    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale={self.scale} must satisfy 0 < low <= high <= 1")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio={self.ratio} must satisfy 0 < low <= high")

    def __call__(self, image: Image.Image, gen: torch.Generator) -> Image.Image:
        width, height = image.size
        area = width * height
        for _ in range(10):
            target = area * _uniform(gen, *self.scale)
            aspect = math.exp(_uniform(gen, math.log(self.ratio[0]), math.log(self.ratio[1])))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=gen))
                left = int(torch.randint(0, width - w + 1, (1,), generator=gen))
                break
        else:  # fall back to the whole image, as torchvision does
            top, left, h, w = 0, 0, height, width
        out = TF.resized_crop(image, top, left, h, w, [height, width])
        if self.flip and _uniform(gen, 0.0, 1.0) < 0.5:
            out = TF.hflip(out)
        return out


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return float(torch.empty(1).uniform_(low, high, generator=gen))


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Normalized image features of a dataset split.

    Attributes:
        features: ``[n, dim]`` features of the un-augmented images (used for evaluation).
        labels: ``[n]`` class indices.
        views: ``[n_views, n, dim]`` features of augmented copies, or ``None``.
        classnames: the dataset's class names, in label order.
        key: the cache key these features were stored under.
        cache_status: ``"hit"``, ``"miss"``, ``"rebuilt (<reason>)"`` or ``"disabled"``; ``"; not saved
            (<reason>)"`` is appended when the cache could not be written.
    """

    features: torch.Tensor
    labels: torch.Tensor
    views: torch.Tensor | None
    classnames: tuple[str, ...]
    key: str
    name: str = ""
    cache_status: str = field(default="disabled", compare=False)

    def __post_init__(self) -> None:
        n = self.features.shape[0]
        if self.labels.shape != (n,):
            raise ValueError(f"labels shape {tuple(self.labels.shape)} does not match {n} features")
        if self.views is not None and self.views.shape[1:] != self.features.shape:
            raise ValueError(f"views shape {tuple(self.views.shape)} does not match features {tuple(self.features.shape)}")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_views(self) -> int:
        return 0 if self.views is None else int(self.views.shape[0])

    def to(self, device: torch.device | str) -> "FeatureSet":
        """The same features on another device."""
        return FeatureSet(
            features=self.features.to(device),
            labels=self.labels.to(device),
            views=None if self.views is None else self.views.to(device),
            classnames=self.classnames,
            key=self.key,
            name=self.name,
            cache_status=self.cache_status,
        )


def default_cache_dir() -> Path:
    """``features`` under :func:`catalyst_nb.paths.cache_root` (the same rule as every other cache)."""
    return cache_root() / "features"


def feature_cache_key(
    clip: ClipBackbone, dataset: _Dataset, *, views: int, seed: int, augmentation: Augmentation | None
) -> str:
    """Digest of everything the cached numbers depend on."""
    spec = {
        "format": _FORMAT,
        "model": clip.name,
        "weights": clip.image_weights_id,
        "dataset": dataset.fingerprint(),
        "views": int(views),
        "seed": int(seed) if views else None,
        "augmentation": repr(augmentation) if views else None,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def _checksum(*tensors: torch.Tensor | None) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        if t is not None:
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _encode(
    clip: ClipBackbone, dataset: _Dataset, *, batch_size: int, transform, desc: str, progress: bool
) -> torch.Tensor:
    chunks = []
    n = len(dataset)
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False)
    try:
        for start in range(0, n, batch_size):
            batch = [clip.preprocess(transform(dataset.load_image(i), i)) for i in range(start, min(n, start + batch_size))]
            chunks.append(clip.encode_images(torch.stack(batch)).cpu())
            bar.update(len(batch))
    finally:
        bar.close()
    return torch.cat(chunks) if chunks else torch.empty(0, 0)


def extract_features(
    clip: ClipBackbone,
    dataset: _Dataset,
    *,
    views: int = 0,
    seed: int = 0,
    augmentation: Augmentation | None = None,
    batch_size: int = 128,
    cache_dir: str | os.PathLike[str] | None | bool = None,
    progress: bool = True,
) -> FeatureSet:
    """Features of every image in ``dataset`` (plus ``views`` augmented copies), from cache when possible.

    Args:
        views: augmented copies per image to precompute (0: none, as for evaluation splits).
        seed: seed of the augmentation draws (part of the cache key).
        augmentation: the recipe for the views (default :class:`Augmentation`).
        cache_dir: folder for cache files; ``None`` uses :func:`default_cache_dir`; ``False`` disables.
        progress: show a progress bar while encoding.
    """
    if views < 0:
        raise ValueError(f"views={views} must be >= 0")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    if len(dataset) == 0:
        raise ValueError(f"dataset {dataset.name!r} has no images")
    augmentation = (augmentation or Augmentation()) if views else None
    key = feature_cache_key(clip, dataset, views=views, seed=seed, augmentation=augmentation)
    labels = torch.tensor(dataset.labels, dtype=torch.long)
    path = None
    status = "disabled"
    if cache_dir is not False:
        folder = Path(cache_dir) if cache_dir not in (None, True) else default_cache_dir()
        path = folder / f"{key}.pt"
        cached, status = _read_cache(path, key, labels)
        if cached is not None:
            return FeatureSet(cached["features"], labels, cached["views"], tuple(dataset.classnames), key,
                              dataset.name, "hit")

    features = _encode(clip, dataset, batch_size=batch_size, transform=lambda img, i: img,
                       desc=f"features {dataset.name}", progress=progress)
    view_feats = None
    if views:
        stacked = []
        for v in range(views):
            gen = torch.Generator().manual_seed(hash_seed(seed, v))
            stacked.append(_encode(clip, dataset, batch_size=batch_size,
                                   transform=lambda img, i, g=gen: augmentation(img, g),
                                   desc=f"view {v + 1}/{views} {dataset.name}", progress=progress))
        view_feats = torch.stack(stacked)
    if path is not None:
        problem = _write_cache(path, key, features, labels, view_feats, dataset)
        if problem is not None:
            warnings.warn(f"feature cache {path} could not be written ({problem}); the features are computed "
                          "but will be computed again next time", CacheWriteWarning, stacklevel=2)
            status = f"{status}; not saved ({problem})"
    return FeatureSet(features, labels, view_feats, tuple(dataset.classnames), key, dataset.name, status)


def hash_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes (Python's ``hash`` is salted)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def _read_cache(path: Path, key: str, labels: torch.Tensor) -> tuple[dict[str, Any] | None, str]:
    if not path.is_file():
        return None, "miss"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        problem = None
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            problem = "unknown format"
        elif payload.get("key") != key:
            problem = "stored key differs"
        elif not torch.equal(payload["labels"], labels):
            problem = "labels differ"
        elif payload["features"].shape[0] != labels.shape[0]:
            problem = "row count differs"
        elif payload.get("checksum") != _checksum(payload["features"], payload.get("views")):
            problem = "checksum mismatch"
    except Exception as exc:  # any unreadable file is corrupt: rebuild rather than fail
        problem = f"unreadable: {type(exc).__name__}"
    if problem is not None:
        log.warning("feature cache %s is invalid (%s); rebuilding it", path.name, problem)
        try:
            path.unlink(missing_ok=True)
        except OSError:  # a read-only cache: the rebuilt entry cannot replace it either, which is reported then
            pass
        return None, f"rebuilt ({problem})"
    return payload, "hit"


def _write_cache(path: Path, key: str, features, labels, views, dataset: _Dataset) -> str | None:
    """Save an entry atomically; returns why it could not be saved, or ``None``."""
    payload = {
        "format": _FORMAT,
        "key": key,
        "features": features,
        "labels": labels,
        "views": views,
        "checksum": _checksum(features, views),
        "dataset": dataset.name,
        "classnames": list(dataset.classnames),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # atomic: a crash leaves the old entry or none, never half a file; no temporary file survives
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None
