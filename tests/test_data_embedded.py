from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from catalyst_nb.data import (
    FASHION_MNIST_CLASSNAMES,
    CorruptDataError,
    DatasetNotFoundError,
    few_shot,
    load_embedded_fashion_mnist,
    load_fashion_mnist,
)
from catalyst_nb.data.embedded import (
    EMBEDDED_METADATA,
    EMBEDDED_NPZ,
    build_embedded_arrays,
    embedded_dataset,
    read_embedded_arrays,
    write_embedded,
)

REPO = Path(__file__).resolve().parent.parent
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
SIZES = {"train": 64, "val": 32, "test": 300}


@pytest.fixture(scope="module")
def embedded():
    return {split: load_embedded_fashion_mnist(split) for split in ("train", "val", "test")}


def packaged_files() -> tuple[Path, Path]:
    package = resources.files("catalyst_nb.data")
    return Path(str(package / EMBEDDED_NPZ)), Path(str(package / EMBEDDED_METADATA))


def test_sizes_names_and_class_balance(embedded):
    for split, per_class in SIZES.items():
        dataset = embedded[split]
        assert dataset.name == f"fashion-mnist-embedded/{split}"
        assert dataset.classnames == FASHION_MNIST_CLASSNAMES
        assert dataset.class_counts() == (per_class,) * 10
        image = dataset.load_image(len(dataset) - 1)
        assert image.mode == "RGB" and image.size == (28, 28)
    assert len(embedded["test"]) >= 2000


def test_splits_are_disjoint_and_come_from_the_right_fashion_mnist_split(embedded):
    train, val, test = (set(embedded[s].ids) for s in ("train", "val", "test"))
    assert train.isdisjoint(val) and train.isdisjoint(test) and val.isdisjoint(test)
    assert all(i.startswith("train/") for i in train | val)
    assert all(i.startswith("test/") for i in test)
    assert all(0 <= int(i.split("/")[1]) < 10_000 for i in test)
    assert all(0 <= int(i.split("/")[1]) < 60_000 for i in train | val)


def test_few_shot_pool_supports_16_shots_for_3_seeds(embedded):
    draws = [few_shot(embedded["train"], shots=16, seed=seed) for seed in (1, 2, 3)]
    assert all(d.class_counts() == (16,) * 10 for d in draws)
    assert len({d.ids for d in draws}) == 3


def test_loader_caches_and_checks_split(embedded):
    assert load_embedded_fashion_mnist("train") is embedded["train"]
    with pytest.raises(ValueError, match="'validation'"):
        load_embedded_fashion_mnist("validation")  # type: ignore[arg-type]


def test_metadata_records_provenance():
    npz, metadata_path = packaged_files()
    metadata = json.loads(metadata_path.read_text())
    assert isinstance(metadata["seed"], int)
    assert set(metadata["source"]["files_sha256"]) == {
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
    }
    assert {s: c["per_class"] for s, c in metadata["counts"].items()} == {s: [n] * 10 for s, n in SIZES.items()}
    assert metadata["npz_bytes"] == npz.stat().st_size
    assert 500_000 < npz.stat().st_size < 3_500_000


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_pixels_match_the_original_files(embedded):
    originals = {"train": load_fashion_mnist("train"), "test": load_fashion_mnist("test")}
    for split in ("train", "val", "test"):
        dataset = embedded[split]
        for position in (0, len(dataset) // 2, len(dataset) - 1):
            origin, index = dataset.ids[position].split("/")
            original = originals[origin]
            assert original.labels[int(index)] == dataset.labels[position]
            np.testing.assert_array_equal(
                np.asarray(original.load_image(int(index))), np.asarray(dataset.load_image(position))
            )


def test_damaged_npz_is_refused(tmp_path):
    npz, metadata = packaged_files()
    shutil.copy(npz, tmp_path / EMBEDDED_NPZ)
    shutil.copy(metadata, tmp_path / EMBEDDED_METADATA)
    arrays = read_embedded_arrays(tmp_path / EMBEDDED_NPZ, tmp_path / EMBEDDED_METADATA)
    assert arrays["test_images"].shape == (3000, 28, 28)
    data = bytearray((tmp_path / EMBEDDED_NPZ).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / EMBEDDED_NPZ).write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match="damaged: sha256 .* does not match"):
        read_embedded_arrays(tmp_path / EMBEDDED_NPZ, tmp_path / EMBEDDED_METADATA)
    (tmp_path / EMBEDDED_NPZ).unlink()
    with pytest.raises(DatasetNotFoundError, match=EMBEDDED_NPZ):
        read_embedded_arrays(tmp_path / EMBEDDED_NPZ, tmp_path / EMBEDDED_METADATA)


def synthetic(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.uint8), n_per_class)
    rng.shuffle(labels)
    images = rng.integers(0, 256, (labels.size, 28, 28), dtype=np.uint8)
    return images, labels


def test_build_is_deterministic_disjoint_and_balanced(tmp_path):
    train_images, train_labels = synthetic(12, 0)
    test_images, test_labels = synthetic(7, 1)
    kwargs = dict(seed=5, train_per_class=4, val_per_class=3, test_per_class=5)
    arrays = build_embedded_arrays(train_images, train_labels, test_images, test_labels, **kwargs)
    again = build_embedded_arrays(train_images, train_labels, test_images, test_labels, **kwargs)
    assert all(np.array_equal(arrays[k], again[k]) for k in arrays)
    other_seed = build_embedded_arrays(train_images, train_labels, test_images, test_labels, **{**kwargs, "seed": 6})
    assert not np.array_equal(arrays["train_indices"], other_seed["train_indices"])
    assert set(arrays["train_indices"]).isdisjoint(arrays["val_indices"])
    for split, per_class in (("train", 4), ("val", 3), ("test", 5)):
        indices = arrays[f"{split}_indices"]
        assert list(indices) == sorted(indices)
        assert np.bincount(arrays[f"{split}_labels"], minlength=10).tolist() == [per_class] * 10
        source_images = test_images if split == "test" else train_images
        source_labels = test_labels if split == "test" else train_labels
        np.testing.assert_array_equal(arrays[f"{split}_images"], source_images[indices])
        np.testing.assert_array_equal(arrays[f"{split}_labels"], source_labels[indices])

    npz, metadata = write_embedded(arrays, tmp_path, provenance={"seed": 5})
    read_back = read_embedded_arrays(npz, metadata)
    assert all(np.array_equal(arrays[k], read_back[k]) for k in arrays)
    dataset = embedded_dataset(read_back, "val")
    assert dataset.ids[0] == f"train/{int(arrays['val_indices'][0]):05d}"

    with pytest.raises(ValueError, match="has 7 images, 8 needed"):
        build_embedded_arrays(train_images, train_labels, test_images, test_labels, **{**kwargs, "test_per_class": 8})


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_build_script_end_to_end(tmp_path):
    source = tmp_path / "idx"
    source.mkdir()
    for prefix, (images, labels) in (("train", synthetic(6, 2)), ("t10k", synthetic(4, 3))):
        write_idx(source / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(source / f"{prefix}-labels-idx1-ubyte.gz", labels)
    spec = importlib.util.spec_from_file_location("build_embedded_data", REPO / "scripts" / "build_embedded_data.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "out"
    out.mkdir()
    argv = ["--source", str(source), "--out-dir", str(out), "--seed", "9",
            "--train-per-class", "3", "--val-per-class", "2", "--test-per-class", "4"]
    assert script.main(argv) == 0
    metadata = json.loads((out / EMBEDDED_METADATA).read_text())
    assert metadata["seed"] == 9 and metadata["counts"]["test"]["total"] == 40
    assert "debian_package" not in metadata["source"]
    first = (out / EMBEDDED_NPZ).read_bytes()
    assert script.main(argv + ["--check"]) == 0
    assert script.main(argv) == 0
    assert (out / EMBEDDED_NPZ).read_bytes() == first  # byte-identical rebuild
    arrays = read_embedded_arrays(out / EMBEDDED_NPZ, out / EMBEDDED_METADATA)
    assert embedded_dataset(arrays, "train").class_counts() == (3,) * 10
