"""Where the pixels of an :class:`~catalyst_nb.data.dataset.ImageDataset` come from.

A dataset is a list of ``(id, label)`` pairs plus one *source* that turns an id into an image. Keeping the
source separate lets subsets, few-shot draws and class restrictions share it without copying pixels, and
lets the dataset fingerprint include what changes the pixels (file sizes and times, or array bytes)
without reading every image.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import CorruptImageError, ImageNotFoundError

__all__ = ["ImageSource", "FileImageSource", "ArrayImageSource"]


class ImageSource(ABC):
    """Turns an image id into an RGB :class:`PIL.Image.Image`.

    Sources compare by identity: two datasets are equal only if they share the same source object.
    """

    @abstractmethod
    def load(self, image_id: str) -> Image.Image:
        """Return the image ``image_id`` as RGB; raise a typed error naming it if it cannot be read."""

    @abstractmethod
    def content_digest(self, ids: Sequence[str]) -> str:
        """A hex digest of whatever, besides the ids, decides the pixels of ``ids``.

        Must be deterministic across processes and cheap relative to decoding the images.
        """

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids among ``ids`` whose image cannot be found (array sources never miss any)."""
        return []


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image.copy()
    if image.mode == "P" and "transparency" in image.info:
        # Going through RGBA avoids PIL's warning about palette transparency and keeps colours right.
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


class FileImageSource(ImageSource):
    """Images stored as files; an id is a path relative to ``root`` with forward slashes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileImageSource(root={str(self.root)!r})"

    def path(self, image_id: str) -> Path:
        """The file behind ``image_id``."""
        return self.root.joinpath(*image_id.split("/"))

    def load(self, image_id: str) -> Image.Image:
        path = self.path(image_id)
        try:
            with Image.open(path) as image:
                image.load()
                return _to_rgb(image)
        except FileNotFoundError as error:
            raise ImageNotFoundError(f"image file not found: {path} (id {image_id!r})") from error
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise CorruptImageError(f"cannot decode image file {path} (id {image_id!r}): {error}") from error

    def content_digest(self, ids: Sequence[str]) -> str:
        # Size and modification time stand in for the bytes: replacing or editing a file changes the
        # digest, and hashing tens of thousands of JPEGs on every call would defeat a feature cache.
        # The root itself is left out so that a moved dataset keeps its fingerprint.
        digest = hashlib.sha256(b"files:v1\n")
        for image_id in ids:
            path = self.path(image_id)
            try:
                stat = path.stat()
            except FileNotFoundError as error:
                raise ImageNotFoundError(f"image file not found: {path} (id {image_id!r})") from error
            digest.update(f"{image_id}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def missing(self, ids: Sequence[str]) -> list[str]:
        return [image_id for image_id in ids if not self.path(image_id).is_file()]


class ArrayImageSource(ImageSource):
    """Images held in memory as one uint8 array of shape ``(N, H, W)`` (grey) or ``(N, H, W, 3)`` (RGB).

    ``ids`` names the rows in order; a dataset built on this source may use any of them in any order.
    """

    def __init__(self, images: np.ndarray, ids: Sequence[str]) -> None:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got dtype {images.dtype}")
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] != 3):
            raise ValueError(f"images must have shape (N, H, W) or (N, H, W, 3), got {images.shape}")
        if len(ids) != images.shape[0]:
            raise ValueError(f"got {len(ids)} ids for {images.shape[0]} images")
        rows: dict[str, int] = {}
        for row, image_id in enumerate(ids):
            if image_id in rows:
                raise ValueError(f"duplicate image id {image_id!r} in array source")
            rows[image_id] = row
        images = np.ascontiguousarray(images)
        images.setflags(write=False)
        self.images = images
        self._rows: Mapping[str, int] = rows
        self._array_digest: str | None = None

    def __repr__(self) -> str:
        return f"ArrayImageSource(shape={self.images.shape})"

    def row(self, image_id: str) -> int:
        """The array row holding ``image_id``."""
        try:
            return self._rows[image_id]
        except KeyError:
            raise KeyError(f"image id {image_id!r} is not in this array source") from None

    def load(self, image_id: str) -> Image.Image:
        pixels = self.images[self.row(image_id)]
        return _to_rgb(Image.fromarray(pixels))  # 2-D uint8 -> "L", (H, W, 3) uint8 -> "RGB"

    def content_digest(self, ids: Sequence[str]) -> str:
        # The whole array is hashed once per source (a few MB for Fashion-MNIST) and reused by every
        # subset; the ids, hashed by the dataset itself, say which rows a subset uses.
        if self._array_digest is None:
            digest = hashlib.sha256(f"array:v1:{self.images.shape}\n".encode())
            digest.update(self.images.tobytes())
            digest.update("\n".join(self._rows).encode())
            self._array_digest = digest.hexdigest()
        return self._array_digest
