from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from catalyst_nb.data import DatasetNotFoundError, few_shot, load_image_folder


def image(path: Path, colour=(10, 20, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 6), colour).save(path)


def test_classes_sorted_by_folder_with_underscores_as_spaces(tmp_path):
    root = tmp_path / "pets"
    image(root / "golden_retriever" / "b.jpg")
    image(root / "golden_retriever" / "a.PNG")
    image(root / "golden_retriever" / "more" / "c.jpeg")
    image(root / "cat" / "x.bmp")
    image(root / "cat" / "y.webp")
    (root / "cat" / "notes.txt").write_text("not an image")
    image(root / "cat" / ".hidden.png")
    image(root / ".cache" / "z.png")
    (root / "README.md").write_text("top-level files are not classes")

    dataset = load_image_folder(root)
    assert dataset.name == "pets"
    assert dataset.classnames == ("cat", "golden retriever")
    assert dataset.ids == (
        "cat/x.bmp",
        "cat/y.webp",
        "golden_retriever/a.PNG",
        "golden_retriever/b.jpg",
        "golden_retriever/more/c.jpeg",
    )
    assert dataset.labels == (0, 0, 1, 1, 1)
    assert dataset.load_image(4).mode == "RGB"
    assert few_shot(dataset, shots=2, seed=0).class_counts() == (2, 2)


def test_labels_do_not_depend_on_creation_order(tmp_path):
    for order, root in ((["b", "a", "c"], tmp_path / "one"), (["c", "a", "b"], tmp_path / "two")):
        for name in order:
            image(root / name / "1.png")
    one, two = load_image_folder(tmp_path / "one", name="x"), load_image_folder(tmp_path / "two", name="x")
    assert one.classnames == two.classnames == ("a", "b", "c") and one.ids == two.ids


def test_custom_extensions(tmp_path):
    image(tmp_path / "a" / "1.png")
    image(tmp_path / "a" / "2.jpg")
    assert load_image_folder(tmp_path, extensions=["png"]).ids == ("a/1.png",)


def test_missing_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nothing-here"):
        load_image_folder(tmp_path / "nothing-here")


def test_empty_class_folder_is_named(tmp_path):
    image(tmp_path / "full" / "1.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"\['empty'\] contain no images"):
        load_image_folder(tmp_path)


def test_no_class_folders(tmp_path):
    image(tmp_path / "loose.png")
    with pytest.raises(ValueError, match="no class folders"):
        load_image_folder(tmp_path)


def test_folders_that_collide_as_class_names(tmp_path):
    image(tmp_path / "sea_lion" / "1.png")
    image(tmp_path / "sea lion" / "1.png")
    with pytest.raises(ValueError, match="same class name"):
        load_image_folder(tmp_path)
