from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalyst_nb.data import (
    ArrayImageSource,
    CorruptImageError,
    FileImageSource,
    ImageDataset,
    ImageNotFoundError,
)

REPO = Path(__file__).resolve().parent.parent


def array_dataset(n_per_class: int = 4, n_classes: int = 3, *, name: str = "toy/train") -> ImageDataset:
    rng = np.random.default_rng(0)
    n = n_per_class * n_classes
    images = rng.integers(0, 256, size=(n, 5, 5), dtype=np.uint8)
    ids = [f"train/{i:05d}" for i in range(n)]
    labels = [i % n_classes for i in range(n)]
    return ImageDataset(
        name=name,
        classnames=tuple(f"class {c}" for c in range(n_classes)),
        labels=tuple(labels),
        ids=tuple(ids),
        source=ArrayImageSource(images, ids),
    )


def file_dataset(root: Path) -> ImageDataset:
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    Image.new("RGB", (4, 3), (255, 0, 0)).save(root / "a" / "1.png")
    Image.new("L", (4, 3), 77).save(root / "b" / "2.png")
    Image.new("P", (4, 3), 1).save(root / "b" / "3.png")
    return ImageDataset(
        name="files",
        classnames=("a", "b"),
        labels=(0, 1, 1),
        ids=("a/1.png", "b/2.png", "b/3.png"),
        source=FileImageSource(root),
    )


def test_array_images_come_back_as_rgb_with_the_same_pixels():
    dataset = array_dataset()
    image = dataset.load_image(5)
    assert image.mode == "RGB" and image.size == (5, 5)
    pixels = np.asarray(image)
    expected = dataset.source.images[dataset.source.row(dataset.ids[5])]
    for channel in range(3):
        np.testing.assert_array_equal(pixels[:, :, channel], expected)
    picture, label = dataset[5]
    assert label == dataset.labels[5] and np.array_equal(np.asarray(picture), pixels)


def test_rgb_arrays_are_supported():
    images = np.zeros((2, 3, 3, 3), dtype=np.uint8)
    images[1, :, :, 2] = 200
    source = ArrayImageSource(images, ["x", "y"])
    assert np.asarray(source.load("y"))[0, 0].tolist() == [0, 0, 200]


def test_file_images_are_rgb_in_every_mode(tmp_path):
    dataset = file_dataset(tmp_path)
    assert [dataset.load_image(i).mode for i in range(3)] == ["RGB", "RGB", "RGB"]
    assert np.asarray(dataset.load_image(0))[0, 0].tolist() == [255, 0, 0]
    assert np.asarray(dataset.load_image(1))[0, 0].tolist() == [77, 77, 77]


def test_missing_image_names_the_file(tmp_path):
    dataset = file_dataset(tmp_path)
    (tmp_path / "b" / "2.png").unlink()
    with pytest.raises(ImageNotFoundError, match=r"b[/\\]2\.png"):
        dataset.load_image(1)
    with pytest.raises(FileNotFoundError):  # typed errors stay FileNotFoundErrors for generic handlers
        dataset.load_image(1)
    with pytest.raises(ImageNotFoundError, match=r"1 of 3 images missing.*'b/2\.png'"):
        dataset.verify()
    dataset.subset([0, 2]).verify()  # the others are still there


def test_corrupt_image_names_the_file(tmp_path):
    dataset = file_dataset(tmp_path)
    (tmp_path / "a" / "1.png").write_bytes(b"not a png at all")
    with pytest.raises(CorruptImageError, match=r"a[/\\]1\.png"):
        dataset.load_image(0)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(labels=(0, 1, 3)), "label 3"),
        (dict(labels=(0, 1)), "2 labels for 3 ids"),
        (dict(ids=("x", "y", "x")), "duplicate image id 'x'"),
        (dict(classnames=("a", "")), "non-empty"),
        (dict(name=""), "non-empty string"),
        (dict(labels=(0, True, 1)), "label True"),
    ],
)
def test_invalid_datasets_are_rejected(change, message):
    fields = dict(name="d", classnames=("a", "b"), labels=(0, 1, 1), ids=("x", "y", "z"))
    fields.update(change)
    with pytest.raises(ValueError, match=message):
        ImageDataset(**fields, source=ArrayImageSource(np.zeros((3, 2, 2), np.uint8), ["x", "y", "z"]))


def test_subset_keeps_order_and_checks_indices():
    dataset = array_dataset()
    sub = dataset.subset([7, 2, -1], name="toy/picked")
    assert sub.ids == (dataset.ids[7], dataset.ids[2], dataset.ids[-1])
    assert sub.labels == (dataset.labels[7], dataset.labels[2], dataset.labels[-1])
    assert sub.name == "toy/picked" and sub.classnames == dataset.classnames
    assert dataset.subset([1]).name == dataset.name
    np.testing.assert_array_equal(np.asarray(sub.load_image(1)), np.asarray(dataset.load_image(2)))
    with pytest.raises(IndexError, match="out of range"):
        dataset.subset([len(dataset)])
    with pytest.raises(ValueError, match="repeat"):
        dataset.subset([1, 1])


def test_restrict_classes_relabels_in_the_order_given():
    dataset = array_dataset(n_per_class=2, n_classes=4)
    restricted = dataset.restrict_classes([3, 1])
    assert restricted.classnames == ("class 3", "class 1")
    assert sorted(restricted.class_counts()) == [2, 2]
    for image_id, label in zip(restricted.ids, restricted.labels):
        original = dataset.labels[dataset.ids.index(image_id)]
        assert restricted.classnames[label] == dataset.classnames[original]
    assert set(restricted.ids) == {i for i, l in zip(dataset.ids, dataset.labels) if l in (1, 3)}
    with pytest.raises(ValueError, match="class index 4"):
        dataset.restrict_classes([4])
    with pytest.raises(ValueError, match="repeat"):
        dataset.restrict_classes([1, 1])


def test_fingerprint_changes_with_everything_that_defines_the_data():
    dataset = array_dataset()
    base = dataset.fingerprint()
    assert len(base) == 64 and int(base, 16) >= 0
    assert array_dataset().fingerprint() == base  # rebuilt from scratch: same value
    variants = [
        array_dataset(name="toy/other"),
        dataset.subset(range(len(dataset) - 1)),
        dataset.subset(list(reversed(range(len(dataset))))),
        dataset.restrict_classes([0, 1, 2]).restrict_classes([1, 0, 2]),
        ImageDataset(dataset.name, ("x", "class 1", "class 2"), dataset.labels, dataset.ids, dataset.source),
    ]
    relabelled = list(dataset.labels)
    relabelled[0] = (relabelled[0] + 1) % 3
    variants.append(ImageDataset(dataset.name, dataset.classnames, tuple(relabelled), dataset.ids, dataset.source))
    other_pixels = dataset.source.images.copy()
    other_pixels[0, 0, 0] ^= 1
    variants.append(
        ImageDataset(dataset.name, dataset.classnames, dataset.labels, dataset.ids, ArrayImageSource(other_pixels, dataset.ids))
    )
    fingerprints = [v.fingerprint() for v in variants]
    assert base not in fingerprints
    assert len(set(fingerprints)) == len(fingerprints)


def test_fingerprint_follows_file_changes_and_is_cached(tmp_path, monkeypatch):
    dataset = file_dataset(tmp_path)
    first = dataset.fingerprint()
    path = tmp_path / "a" / "1.png"
    Image.new("RGB", (5, 3), (0, 255, 0)).save(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert dataset.fingerprint() == first  # cached on the value, the files are not re-read
    fresh = ImageDataset(dataset.name, dataset.classnames, dataset.labels, dataset.ids, FileImageSource(tmp_path))
    assert fresh.fingerprint() != first

    calls = []
    source = FileImageSource(tmp_path)
    original = source.content_digest
    monkeypatch.setattr(source, "content_digest", lambda ids: calls.append(1) or original(ids))
    counted = ImageDataset("files", ("a", "b"), (0, 1, 1), dataset.ids, source)
    assert counted.fingerprint() == counted.fingerprint() == fresh.fingerprint()
    assert len(calls) == 1


def test_fingerprint_does_not_depend_on_where_the_files_are(tmp_path):
    a = file_dataset(tmp_path / "one")
    b = file_dataset(tmp_path / "two")
    for image_id in a.ids:  # same sizes and times in both places
        stat = (tmp_path / "one" / image_id).stat()
        os.utime(tmp_path / "two" / image_id, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert a.fingerprint() == b.fingerprint()


def test_fingerprint_is_the_same_in_another_process():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
        "from test_data_dataset import array_dataset; print(array_dataset().fingerprint())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO), str(Path(__file__).parent)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert out.stdout.strip() == array_dataset().fingerprint()


def test_datasets_pickle_for_data_loader_workers(tmp_path):
    for dataset in (array_dataset(), file_dataset(tmp_path)):
        clone = pickle.loads(pickle.dumps(dataset))
        assert clone.fingerprint() == dataset.fingerprint()
        np.testing.assert_array_equal(np.asarray(clone.load_image(1)), np.asarray(dataset.load_image(1)))


def test_index_errors():
    dataset = array_dataset()
    with pytest.raises(IndexError, match="12 out of range for 12"):
        dataset.load_image(12)
    with pytest.raises(TypeError):
        dataset.load_image("0")  # type: ignore[arg-type]
