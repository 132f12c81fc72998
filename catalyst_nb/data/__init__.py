"""Datasets for prompt tuning: one immutable :class:`ImageDataset` type and the ways to get one.

* :func:`load_embedded_fashion_mnist`: the Fashion-MNIST subset shipped with the package (no downloads);
* :func:`load_fashion_mnist`: full Fashion-MNIST from IDX files (Debian ``dataset-fashion-mnist`` or
  torchvision's ``FashionMNIST/raw``);
* :func:`load_coop_split`: CoOp's split JSON files for its 11 benchmark datasets;
* :func:`load_image_folder`: any ``root/<class_name>/<image>`` folder;
* :func:`few_shot` and :func:`base_new_split` / :func:`split_base_new`: CoOp's few-shot and base-to-new
  protocols, reproducible from a seed and independent of file order.
"""

from __future__ import annotations

from .coop import COOP_SPLITS, load_coop_split
from .dataset import ImageDataset
from .embedded import EMBEDDED_SPLITS, load_embedded_fashion_mnist
from .errors import CorruptDataError, CorruptImageError, DatasetNotFoundError, ImageNotFoundError
from .fashion_mnist import (
    DEBIAN_FASHION_MNIST_DIR,
    DEBIAN_FASHION_MNIST_PACKAGE,
    FASHION_MNIST_CLASSNAMES,
    load_fashion_mnist,
    read_fashion_mnist_arrays,
)
from .folder import IMAGE_EXTENSIONS, load_image_folder
from .idx import read_idx
from .sampling import base_new_split, few_shot, split_base_new
from .sources import ArrayImageSource, FileImageSource, ImageSource

__all__ = [
    "ImageDataset",
    "ImageSource",
    "FileImageSource",
    "ArrayImageSource",
    "few_shot",
    "base_new_split",
    "split_base_new",
    "load_coop_split",
    "COOP_SPLITS",
    "load_image_folder",
    "IMAGE_EXTENSIONS",
    "load_fashion_mnist",
    "read_fashion_mnist_arrays",
    "read_idx",
    "FASHION_MNIST_CLASSNAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "DEBIAN_FASHION_MNIST_PACKAGE",
    "load_embedded_fashion_mnist",
    "EMBEDDED_SPLITS",
    "DatasetNotFoundError",
    "ImageNotFoundError",
    "CorruptImageError",
    "CorruptDataError",
]
