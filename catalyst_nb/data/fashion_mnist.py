"""Fashion-MNIST from its IDX files: Debian's package, torchvision's download, or any folder.

Fashion-MNIST (Zalando Research, MIT licence) has 60,000 training and 10,000 test images, 28x28 grey, in
ten clothing classes. On Debian and Ubuntu ``apt-get install dataset-fashion-mnist`` puts the four gzipped
IDX files in ``/usr/share/datasets/fashion-mnist``, the default here. Where there is network instead,
torchvision downloads the same files::

    torchvision.datasets.FashionMNIST("~/data", train=True, download=True)
    load_fashion_mnist("train", root="~/data/FashionMNIST/raw")   # or root="~/data"

Either the gzipped or the unpacked files work.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np

from .dataset import ImageDataset
from .errors import CorruptDataError, DatasetNotFoundError
from .idx import read_idx
from .sources import ArrayImageSource

__all__ = [
    "FASHION_MNIST_CLASSNAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "DEBIAN_FASHION_MNIST_PACKAGE",
    "fashion_mnist_files",
    "read_fashion_mnist_arrays",
    "load_fashion_mnist",
]

logger = logging.getLogger(__name__)

# Lower-case, as they read in a prompt ("a photo of a t-shirt"); order is the label order of the IDX files.
FASHION_MNIST_CLASSNAMES: tuple[str, ...] = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"

_PREFIX = {"train": "train", "test": "t10k"}
_KINDS = (("images", "idx3"), ("labels", "idx1"))


def _check_split(split: str) -> str:
    if split not in _PREFIX:
        raise ValueError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
    return split


def _candidates(split: str, kind: str, idx: str) -> list[str]:
    prefix = _PREFIX[split]
    stems = (f"{prefix}-{kind}-{idx}-ubyte", f"{prefix}-{kind}.{idx}-ubyte")
    return [name for stem in stems for name in (stem, f"{stem}.gz")]


def _search_dirs(root: Path) -> list[Path]:
    # torchvision keeps the files in <root>/FashionMNIST/raw; accept its root as well as the raw folder.
    return [root, root / "FashionMNIST" / "raw", root / "raw"]


def _not_found_message(root: Path, missing: list[str], *, default_root: bool) -> str:
    where = f"Fashion-MNIST IDX files not found in {root}" + (" (the Debian default)" if default_root else "")
    return (
        f"{where}; missing {', '.join(missing)}. Install the Debian/Ubuntu package "
        f"{DEBIAN_FASHION_MNIST_PACKAGE} (sudo apt-get install {DEBIAN_FASHION_MNIST_PACKAGE}), or pass "
        "root= a folder holding the four IDX files (gzipped or not), for example torchvision's "
        "<dir>/FashionMNIST/raw after torchvision.datasets.FashionMNIST('<dir>', download=True). "
        "load_embedded_fashion_mnist() needs neither: its subset ships with catalyst_nb."
    )


def fashion_mnist_files(split: str, *, root: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """Paths of the images and labels IDX files of ``split`` under ``root`` (default: Debian's folder)."""
    _check_split(split)
    default_root = root is None
    base = DEBIAN_FASHION_MNIST_DIR if root is None else Path(root).expanduser()
    found: list[Path] = []
    missing: list[str] = []
    for kind, idx in _KINDS:
        names = _candidates(split, kind, idx)
        hit = next((d / n for d in _search_dirs(base) for n in names if (d / n).is_file()), None)
        if hit is None:
            missing.append(f"{names[0]}[.gz]")
        else:
            found.append(hit)
    if missing:
        raise DatasetNotFoundError(_not_found_message(base, missing, default_root=default_root))
    return found[0], found[1]


def read_fashion_mnist_arrays(
    split: str, *, root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: uint8 arrays of shape ``(N, 28, 28)`` and ``(N,)`` for ``split``."""
    images_path, labels_path = fashion_mnist_files(split, root=root)
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise CorruptDataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSNAMES):
        raise CorruptDataError(f"{labels_path}: label {int(labels.max())} is not a Fashion-MNIST class (0..9)")
    return images, labels


def load_fashion_mnist(
    split: Literal["train", "test"], *, root: str | os.PathLike[str] | None = None
) -> ImageDataset:
    """Fashion-MNIST ``split`` as an :class:`ImageDataset` named ``"fashion-mnist/<split>"``.

    Ids are ``"<split>/<index>"`` with the index in the IDX file zero-padded to five digits, so a subset
    drawn from here can be traced back to the original images.
    """
    images, labels = read_fashion_mnist_arrays(split, root=root)
    ids = tuple(f"{split}/{index:05d}" for index in range(images.shape[0]))
    logger.info("loaded Fashion-MNIST %s: %d images", split, len(ids))
    return ImageDataset(
        name=f"fashion-mnist/{split}",
        classnames=FASHION_MNIST_CLASSNAMES,
        labels=tuple(int(label) for label in labels),
        ids=ids,
        source=ArrayImageSource(images, ids),
    )
