from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalyst_nb.data import (
    CorruptDataError,
    DatasetNotFoundError,
    ImageNotFoundError,
    few_shot,
    load_coop_split,
)

CLASSES = ["accordion", "airplane", "anchor"]


def make_coop_dataset(tmp_path: Path, *, image_dir: str = "101_ObjectCategories") -> tuple[Path, dict]:
    """A CoOp-style dataset folder: split JSON at the top, images below ``image_dir``."""
    root = tmp_path / "caltech-101"
    images = root / image_dir if image_dir else root
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, classname in enumerate(CLASSES):
        (images / classname).mkdir(parents=True)
        for k in range(6):
            relative = f"{classname}/image_{k:04d}.jpg"
            Image.new("RGB", (8, 8), (label * 80, k * 40, 0)).save(images / relative)
            part = "train" if k < 3 else "val" if k == 3 else "test"
            split[part].append([relative, label, classname])
    (root / "split_zhou_Caltech101.json").write_text(json.dumps(split))
    return root, split


def test_reads_all_three_splits(tmp_path):
    root, split = make_coop_dataset(tmp_path)
    datasets = load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")
    assert set(datasets) == {"train", "val", "test"}
    train = datasets["train"]
    assert train.name == "caltech-101/train"
    assert train.classnames == tuple(CLASSES)
    assert train.ids == tuple(entry[0] for entry in split["train"])
    assert train.labels == tuple(entry[1] for entry in split["train"])
    assert [len(datasets[s]) for s in ("train", "val", "test")] == [9, 3, 6]
    image = train.load_image(4)  # airplane, k = 1
    assert image.mode == "RGB" and np.asarray(image)[0, 0].tolist()[:2] == pytest.approx([80, 40], abs=3)
    assert few_shot(train, shots=2, seed=1).class_counts() == (2, 2, 2)
    assert len({d.fingerprint() for d in datasets.values()}) == 3


def test_absolute_json_path_image_dir_at_root_and_custom_name(tmp_path):
    root, _ = make_coop_dataset(tmp_path, image_dir="")
    datasets = load_coop_split(root, root / "split_zhou_Caltech101.json", image_dir="", name="cal")
    assert datasets["test"].name == "cal/test"
    datasets["test"].verify()
    assert datasets["test"].load_image(0).size == (8, 8)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="dataset folder not found: .*nowhere"):
        load_coop_split(tmp_path / "nowhere", "split.json")


def test_missing_split_file_lists_the_json_files_there(tmp_path):
    root, _ = make_coop_dataset(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"split_oops\.json.*split_zhou_Caltech101\.json"):
        load_coop_split(root, "split_oops.json", image_dir="101_ObjectCategories")


def test_missing_image_folder(tmp_path):
    root, _ = make_coop_dataset(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"image folder not found: .*images.*image_dir="):
        load_coop_split(root, "split_zhou_Caltech101.json")  # default image_dir="images" is wrong here


def test_missing_image_is_named_on_load_and_by_verify(tmp_path):
    root, _ = make_coop_dataset(tmp_path)
    (root / "101_ObjectCategories" / "anchor" / "image_0005.jpg").unlink()
    datasets = load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")
    test = datasets["test"]
    with pytest.raises(ImageNotFoundError, match=r"anchor[/\\]image_0005\.jpg"):
        test.load_image(test.ids.index("anchor/image_0005.jpg"))
    datasets["train"].verify()
    with pytest.raises(ImageNotFoundError, match="anchor/image_0005.jpg"):
        load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories", verify=True)


def rewrite(root: Path, split: dict) -> None:
    (root / "split_zhou_Caltech101.json").write_text(json.dumps(split))


def test_label_with_two_class_names_is_an_error_naming_the_pair_and_file(tmp_path):
    root, split = make_coop_dataset(tmp_path)
    split["test"][1][2] = "accordian"
    rewrite(root, split)
    with pytest.raises(
        ValueError, match=r"split_zhou_Caltech101\.json.*label 0 is 'accordion'.*but 'accordian' at .*\[test\]\[1\]"
    ):
        load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")


def test_class_name_with_two_labels_is_an_error_naming_the_pair_and_file(tmp_path):
    root, split = make_coop_dataset(tmp_path)
    split["val"][2][1] = 3  # a second label for 'anchor' (label 2 in train)
    rewrite(root, split)
    with pytest.raises(
        ValueError,
        match=r"split_zhou_Caltech101\.json.*class name 'anchor' has label 2 at \[train\]\[6\] but label 3 at \[val\]\[2\]",
    ):
        load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")


def test_label_gap_is_an_error(tmp_path):
    root, split = make_coop_dataset(tmp_path)
    for part in split.values():
        for entry in part:
            if entry[1] == 2:
                entry[1] = 3
    rewrite(root, split)
    with pytest.raises(CorruptDataError, match=r"labels must run 0\.\.3 but \[2\] never occur"):
        load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")


@pytest.mark.parametrize(
    "entry, message",
    [
        (["a.jpg", 0], r"expected \[path, label, classname\]"),
        (["a.jpg", "0", "accordion"], "label must be a non-negative int"),
        (["a.jpg", -1, "accordion"], "label must be a non-negative int"),
        ([3, 0, "accordion"], "image path must be a string"),
        (["../escape.jpg", 0, "accordion"], "without '..'"),
        (["/abs/a.jpg", 0, "accordion"], "must be relative"),
        (["a.jpg", 0, " "], "class name must be a non-empty string"),
    ],
)
def test_malformed_entries_are_named(tmp_path, entry, message):
    root, split = make_coop_dataset(tmp_path)
    split["train"].append(entry)
    rewrite(root, split)
    with pytest.raises(CorruptDataError, match=message) as info:
        load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")
    assert "[train][9]" in str(info.value)


def test_duplicate_path_invalid_json_and_wrong_top_level(tmp_path):
    root, split = make_coop_dataset(tmp_path)
    split["test"].append(list(split["test"][0]))
    rewrite(root, split)
    with pytest.raises(CorruptDataError, match="listed twice"):
        load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")
    (root / "split_zhou_Caltech101.json").write_text("{not json")
    with pytest.raises(CorruptDataError, match="not valid JSON"):
        load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")
    (root / "split_zhou_Caltech101.json").write_text(json.dumps({"training": []}))
    with pytest.raises(CorruptDataError, match="none of the keys"):
        load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")


def test_only_some_splits_present(tmp_path):
    root, split = make_coop_dataset(tmp_path)
    del split["val"]
    rewrite(root, split)
    datasets = load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")
    assert set(datasets) == {"train", "test"}


def test_underscores_in_class_names_read_as_spaces_as_in_coop(tmp_path):
    """CoOp prompts "wild_cat" as "wild cat" (Caltech101, Food101, OxfordPets, UCF101 have such names)."""
    root, split = make_coop_dataset(tmp_path)
    for part in split.values():
        for entry in part:
            entry[2] = {"accordion": "grand_piano", "airplane": "Apply_Eye_Makeup"}.get(entry[2], entry[2])
    rewrite(root, split)
    datasets = load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")
    assert datasets["train"].classnames == ("grand piano", "Apply Eye Makeup", "anchor")
    assert datasets["test"].classnames == datasets["train"].classnames


def test_names_that_coincide_once_underscores_are_spaces_are_an_error(tmp_path):
    root, split = make_coop_dataset(tmp_path)
    for part in split.values():
        for entry in part:
            entry[2] = {"accordion": "wild_cat", "airplane": "wild cat"}.get(entry[2], entry[2])
    rewrite(root, split)
    with pytest.raises(CorruptDataError, match=r"\['wild cat'\] coincide"):
        load_coop_split(root, "split_zhou_Caltech101.json", image_dir="101_ObjectCategories")
