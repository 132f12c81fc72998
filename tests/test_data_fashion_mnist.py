from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

import catalyst_nb.data.fashion_mnist as fashion_mnist_module
from catalyst_nb.data import (
    FASHION_MNIST_CLASSNAMES,
    CorruptDataError,
    DatasetNotFoundError,
    load_fashion_mnist,
    read_idx,
)

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written independently of the reader: magic 0x00 0x00 0x08 ndim, big-endian dims."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_split(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, *, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def tiny_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_reads_plain_and_gzipped_idx(tmp_path, gz):
    train_images, train_labels = tiny_arrays(30, 0)
    test_images, test_labels = tiny_arrays(20, 1)
    write_split(tmp_path, "train", train_images, train_labels, gz=gz)
    write_split(tmp_path, "t10k", test_images, test_labels, gz=gz)
    train = load_fashion_mnist("train", root=tmp_path)
    test = load_fashion_mnist("test", root=tmp_path)
    assert train.name == "fashion-mnist/train" and test.name == "fashion-mnist/test"
    assert train.classnames == FASHION_MNIST_CLASSNAMES == test.classnames
    assert len(train) == 30 and len(test) == 20
    assert train.ids[:2] == ("train/00000", "train/00001") and test.ids[-1] == "test/00019"
    assert train.labels == tuple(int(x) for x in train_labels)
    pixels = np.asarray(test.load_image(7))
    assert pixels.shape == (28, 28, 3)
    np.testing.assert_array_equal(pixels[:, :, 1], test_images[7])


def test_torchvision_raw_layout(tmp_path):
    images, labels = tiny_arrays(12, 2)
    raw = tmp_path / "FashionMNIST" / "raw"
    write_split(raw, "train", images, labels, gz=True)
    write_split(raw, "train", images, labels, gz=False)  # torchvision keeps both
    for root in (raw, tmp_path):
        dataset = load_fashion_mnist("train", root=root)
        assert len(dataset) == 12 and dataset.labels == tuple(int(x) for x in labels)


def test_missing_files_name_the_debian_package_and_the_alternative(tmp_path):
    images, labels = tiny_arrays(5, 3)
    write_split(tmp_path, "train", images, labels, gz=True)
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist("test", root=tmp_path)
    message = str(info.value)
    for needle in ("t10k-images-idx3-ubyte", "dataset-fashion-mnist", "apt-get install", "root=", "FashionMNIST/raw"):
        assert needle in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_debian_data_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist_module, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "not-installed")
    with pytest.raises(DatasetNotFoundError, match=r"not-installed \(the Debian default\).*apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train")


def test_bad_split():
    with pytest.raises(ValueError, match="'validation'"):
        load_fashion_mnist("validation")  # type: ignore[arg-type]


def test_corrupt_files(tmp_path):
    images, labels = tiny_arrays(6, 4)
    write_split(tmp_path, "train", images, labels[:5], gz=False)
    with pytest.raises(CorruptDataError, match="6 images but .* 5 labels"):
        load_fashion_mnist("train", root=tmp_path)
    labels = labels.copy()
    labels[2] = 10
    write_split(tmp_path, "train", images, labels, gz=False)
    with pytest.raises(CorruptDataError, match="label 10"):
        load_fashion_mnist("train", root=tmp_path)


def test_read_idx_checks_magic_type_shape_and_size(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path.write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(read_idx(path, ndim=3), array)
    with pytest.raises(CorruptDataError, match="expected a 1-dimensional"):
        read_idx(path, ndim=1)
    path.write_bytes(idx_bytes(array)[:-1])
    with pytest.raises(CorruptDataError, match=r"shape \(2, 3, 4\) \(24 bytes\).*23 data bytes"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00" * 4)
    with pytest.raises(CorruptDataError, match="type code 0x0d"):
        read_idx(path)
    path.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(CorruptDataError, match="not an IDX file"):
        read_idx(path)
    path.write_bytes(b"\x1f\x8b broken gzip")
    with pytest.raises(CorruptDataError, match="damaged gzip"):
        read_idx(path)
    with pytest.raises(DatasetNotFoundError):
        read_idx(tmp_path / "absent")


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_debian_files():
    train = load_fashion_mnist("train")
    test = load_fashion_mnist("test")
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.class_counts() == (6000,) * 10 and test.class_counts() == (1000,) * 10
    assert train.load_image(0).size == (28, 28)
    assert train.fingerprint() != test.fingerprint()
