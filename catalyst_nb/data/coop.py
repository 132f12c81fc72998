"""Adapter for CoOp's split files.

CoOp (KaiyangZhou/CoOp) ships one JSON per dataset, e.g. ``caltech-101/split_zhou_Caltech101.json``::

    {"train": [["accordion/image_0001.jpg", 0, "accordion"], ...], "val": [...], "test": [...]}

Paths are relative to the dataset's image folder (``101_ObjectCategories`` for Caltech101, ``images`` for
OxfordPets and Food101, ``jpg`` for Flowers102, ``2750`` for EuroSAT, the dataset folder itself for
StanfordCars). Using these files keeps our train/val/test images exactly those of the published results.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path, PurePosixPath

from .dataset import ImageDataset
from .errors import CorruptDataError, DatasetNotFoundError
from .sources import FileImageSource

__all__ = ["load_coop_split", "COOP_SPLITS"]

logger = logging.getLogger(__name__)

COOP_SPLITS: tuple[str, ...] = ("train", "val", "test")


def _relative_id(raw: str, where: str) -> str:
    path = PurePosixPath(raw.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts or raw.strip() == "":
        raise CorruptDataError(f"{where}: image path {raw!r} must be relative to the image folder, without '..'")
    return path.as_posix()


def load_coop_split(
    root: str | os.PathLike[str],
    split_json: str | os.PathLike[str],
    *,
    image_dir: str | os.PathLike[str] = "images",
    name: str | None = None,
    verify: bool = False,
) -> dict[str, ImageDataset]:
    """Read a CoOp split file into one :class:`ImageDataset` per split present (train, val, test).

    ``split_json`` and ``image_dir`` are relative to ``root`` unless absolute; ``image_dir=""`` means the
    images lie directly under ``root``. Datasets are named ``f"{name}/{split}"`` with ``name`` defaulting to
    the folder name. Class names come from the file, with underscores read as spaces (as CoOp's prompts
do: ``"wild_cat"`` is prompted as ``"wild cat"``); a label used with two names, or a name used with two
    labels, anywhere in the file is an error naming the pair and the file. With ``verify=True`` every image
    is checked to exist now rather than when it is first loaded.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"dataset folder not found: {root}")
    split_path = Path(split_json)
    if not split_path.is_absolute():
        split_path = root / split_path
    if not split_path.is_file():
        available = sorted(p.name for p in root.glob("*.json"))
        hint = f"; JSON files in {root}: {', '.join(available)}" if available else f"; {root} has no JSON files"
        raise DatasetNotFoundError(f"split file not found: {split_path}{hint}")
    images_root = Path(image_dir)
    if not images_root.is_absolute():
        images_root = root / images_root
    if not images_root.is_dir():
        raise DatasetNotFoundError(
            f"image folder not found: {images_root} (pass image_dir= the folder the paths in {split_path.name} "
            "are relative to, '' for the dataset folder itself)"
        )

    try:
        content = json.loads(split_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptDataError(f"{split_path}: not valid JSON: {error}") from error
    if not isinstance(content, dict):
        raise CorruptDataError(
            f"{split_path}: expected an object with keys {list(COOP_SPLITS)}, got {type(content).__name__}"
        )
    present = [split for split in COOP_SPLITS if split in content]
    if not present:
        raise CorruptDataError(f"{split_path}: none of the keys {list(COOP_SPLITS)} found (keys: {sorted(content)})")
    extra = sorted(set(content) - set(COOP_SPLITS))
    if extra:
        logger.warning("%s: ignoring keys %s", split_path, extra)

    label_to_name: dict[int, tuple[str, str]] = {}
    name_to_label: dict[str, tuple[int, str]] = {}
    parsed: dict[str, list[tuple[str, int]]] = {}
    for split in present:
        entries = content[split]
        if not isinstance(entries, list):
            raise CorruptDataError(f"{split_path}: {split!r} must be a list of [path, label, classname]")
        rows: list[tuple[str, int]] = []
        seen: set[str] = set()
        for position, entry in enumerate(entries):
            location = f"[{split}][{position}]"
            where = f"{split_path} {location}"
            if not isinstance(entry, (list, tuple)) or len(entry) != 3:
                raise CorruptDataError(f"{where}: expected [path, label, classname], got {entry!r}")
            raw_path, label, classname = entry
            if not isinstance(raw_path, str):
                raise CorruptDataError(f"{where}: image path must be a string, got {raw_path!r}")
            if isinstance(label, bool) or not isinstance(label, int) or label < 0:
                raise CorruptDataError(f"{where}: label must be a non-negative int, got {label!r}")
            if not isinstance(classname, str) or not classname.strip():
                raise CorruptDataError(f"{where}: class name must be a non-empty string, got {classname!r}")
            image_id = _relative_id(raw_path, where)
            if image_id in seen:
                raise CorruptDataError(f"{where}: image {image_id!r} listed twice in {split!r}")
            seen.add(image_id)
            known_name = label_to_name.setdefault(label, (classname, location))
            if known_name[0] != classname:
                raise CorruptDataError(
                    f"{split_path}: labels and class names disagree: label {label} is {known_name[0]!r} at "
                    f"{known_name[1]} but {classname!r} at {location}"
                )
            known_label = name_to_label.setdefault(classname, (label, location))
            if known_label[0] != label:
                raise CorruptDataError(
                    f"{split_path}: labels and class names disagree: class name {classname!r} has label "
                    f"{known_label[0]} at {known_label[1]} but label {label} at {location}"
                )
            rows.append((image_id, label))
        parsed[split] = rows

    if not label_to_name:
        raise CorruptDataError(f"{split_path}: the splits {present} list no images")
    n_classes = max(label_to_name) + 1
    gaps = [label for label in range(n_classes) if label not in label_to_name]
    if gaps:
        raise CorruptDataError(f"{split_path}: labels must run 0..{n_classes - 1} but {gaps[:10]} never occur")
    # CoOp's prompt learner and zero-shot model read "wild_cat" as "wild cat" (name.replace("_", " ")), as
    # our image-folder loader does; the names in the file are kept for the consistency checks above.
    classnames = tuple(label_to_name[label][0].replace("_", " ").strip() for label in range(n_classes))
    if len(set(classnames)) != len(classnames):
        clash = sorted({c for c in classnames if classnames.count(c) > 1})
        raise CorruptDataError(f"{split_path}: class names {clash} coincide once underscores read as spaces")

    source = FileImageSource(images_root)
    base_name = name if name is not None else root.resolve().name
    datasets = {
        split: ImageDataset(
            name=f"{base_name}/{split}",
            classnames=classnames,
            labels=tuple(label for _, label in rows),
            ids=tuple(image_id for image_id, _ in rows),
            source=source,
        )
        for split, rows in parsed.items()
    }
    if verify:
        for dataset in datasets.values():
            dataset.verify()
    logger.info(
        "loaded CoOp split %s: %d classes, %s",
        split_path,
        n_classes,
        ", ".join(f"{split} {len(d)}" for split, d in datasets.items()),
    )
    return datasets
