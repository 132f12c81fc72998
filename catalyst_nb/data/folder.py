"""Adapter for the plain one-folder-per-class layout (``root/<class_name>/<image>``).

This is the layout of torchvision's ``ImageFolder`` and of most hand-collected datasets. Class folders are
sorted by name so labels do not depend on the order the file system lists them in; ``_`` in a folder name
becomes a space in the class name, because class names go into text prompts ("a photo of a golden
retriever").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from .dataset import ImageDataset
from .errors import DatasetNotFoundError
from .sources import FileImageSource

__all__ = ["load_image_folder", "IMAGE_EXTENSIONS"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _images_under(folder: Path, extensions: frozenset[str]) -> list[str]:
    """Image paths below ``folder`` (recursively), relative to it, with forward slashes, sorted."""
    found: list[str] = []
    for directory, subdirectories, files in os.walk(folder, followlinks=True):
        subdirectories[:] = [d for d in subdirectories if not _is_hidden(d)]
        relative = Path(directory).relative_to(folder)
        for file_name in files:
            if not _is_hidden(file_name) and Path(file_name).suffix.lower() in extensions:
                found.append((relative / file_name).as_posix())
    return sorted(found)


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    name: str | None = None,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
) -> ImageDataset:
    """One :class:`ImageDataset` from ``root/<class folder>/**/<image>``.

    Labels follow the sorted class-folder names; ids are paths relative to ``root``
    (``"golden_retriever/001.jpg"``). A class folder without images is an error naming it, since a
    class that cannot be shown cannot be learned or evaluated.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder dataset not found: {root}")
    wanted = frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    if not wanted:
        raise ValueError("extensions must name at least one file extension")
    class_folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name))
    if not class_folders:
        raise ValueError(f"{root}: no class folders found (expected {root}/<class_name>/<image files>)")
    classnames = tuple(folder.replace("_", " ").strip() for folder in class_folders)
    if len(set(classnames)) != len(classnames):
        clashes = sorted(
            folder for folder, classname in zip(class_folders, classnames) if classnames.count(classname) > 1
        )
        raise ValueError(f"{root}: class folders {clashes} give the same class name once '_' becomes ' '")

    labels: list[int] = []
    ids: list[str] = []
    empty: list[str] = []
    for label, folder in enumerate(class_folders):
        images = _images_under(root / folder, wanted)
        if not images:
            empty.append(folder)
        ids.extend(f"{folder}/{image}" for image in images)
        labels.extend([label] * len(images))
    if empty:
        raise ValueError(
            f"{root}: class folder(s) {empty} contain no images with extensions {sorted(wanted)}"
        )
    dataset = ImageDataset(
        name=name if name is not None else root.resolve().name,
        classnames=classnames,
        labels=tuple(labels),
        ids=tuple(ids),
        source=FileImageSource(root),
    )
    logger.info("loaded image folder %s: %d classes, %d images", root, len(classnames), len(dataset))
    return dataset
