"""The one dataset type the rest of catalyst_nb sees.

An :class:`ImageDataset` is an immutable list of labelled image ids plus a source that decodes them. Every
derived dataset (subset, few-shot draw, base/new classes) is a new value sharing the source, so nothing is
copied and nothing is mutated behind a cache's back. :meth:`ImageDataset.fingerprint` keys caches of image
features: it changes whenever the name, classes, ids, labels or pixels change, and is cheap to call again.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from .errors import ImageNotFoundError
from .sources import ImageSource

__all__ = ["ImageDataset"]

_FINGERPRINT_VERSION = "catalyst_nb.ImageDataset:v1"


@dataclass(frozen=True)
class ImageDataset:
    """Labelled images: ``labels[i]`` indexes ``classnames`` and ``ids[i]`` names image ``i`` in ``source``.

    Ids are stable and unique (a relative path, or ``"train/00042"`` for array data), so a selection made
    from ids is reproducible across machines and file orders.
    """

    name: str
    classnames: tuple[str, ...]
    labels: tuple[int, ...]
    ids: tuple[str, ...]
    source: ImageSource = field(repr=False)

    def __post_init__(self) -> None:
        # Normalise lists to tuples so that callers may pass any sequence and the value stays hashable.
        for attribute in ("classnames", "labels", "ids"):
            value = getattr(self, attribute)
            if not isinstance(value, tuple):
                object.__setattr__(self, attribute, tuple(value))
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"dataset name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.source, ImageSource):
            raise TypeError(f"source must be an ImageSource, got {type(self.source).__name__}")
        for classname in self.classnames:
            if not isinstance(classname, str) or not classname.strip():
                raise ValueError(f"{self.name}: class names must be non-empty strings, got {classname!r}")
        if len(self.labels) != len(self.ids):
            raise ValueError(f"{self.name}: {len(self.labels)} labels for {len(self.ids)} ids")
        n_classes = len(self.classnames)
        for position, label in enumerate(self.labels):
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < n_classes:
                raise ValueError(
                    f"{self.name}: label {label!r} of image {position} ({self.ids[position]!r}) "
                    f"is not an int in 0..{n_classes - 1}"
                )
        if len(set(self.ids)) != len(self.ids):
            seen: set[str] = set()
            for image_id in self.ids:
                if image_id in seen:
                    raise ValueError(f"{self.name}: duplicate image id {image_id!r}")
                seen.add(image_id)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        """``(image, label)``, the pair a ``torch.utils.data.DataLoader`` expects."""
        return self.load_image(index), self.labels[self._check_index(index)]

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"{self.name}: image index must be an int, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: image index {index} out of range for {len(self)} images")
        return index % len(self)

    def load_image(self, index: int) -> Image.Image:
        """Image ``index`` as RGB; a missing or corrupt file raises an error naming the file."""
        return self.source.load(self.ids[self._check_index(index)])

    def class_counts(self) -> tuple[int, ...]:
        """Number of images per class, in class order."""
        counts = [0] * len(self.classnames)
        for label in self.labels:
            counts[label] += 1
        return tuple(counts)

    def subset(self, indices: Sequence[int], *, name: str | None = None) -> ImageDataset:
        """The images at ``indices`` (in that order), same classes; ``name`` defaults to this one's."""
        positions = [self._check_index(index) for index in indices]
        if len(set(positions)) != len(positions):
            raise ValueError(f"{self.name}: subset indices repeat an image")
        return ImageDataset(
            name=self.name if name is None else name,
            classnames=self.classnames,
            labels=tuple(self.labels[p] for p in positions),
            ids=tuple(self.ids[p] for p in positions),
            source=self.source,
        )

    def restrict_classes(self, class_indices: Sequence[int], *, name: str | None = None) -> ImageDataset:
        """Keep the images of ``class_indices`` and relabel them 0..m-1 in the order given.

        This is CoOp's relabelling for base-to-new evaluation: ``class_indices[j]`` becomes class ``j``.
        """
        n_classes = len(self.classnames)
        order = list(class_indices)
        if not order:
            raise ValueError(f"{self.name}: restrict_classes needs at least one class index")
        for class_index in order:
            if isinstance(class_index, bool) or not isinstance(class_index, int) or not 0 <= class_index < n_classes:
                raise ValueError(f"{self.name}: class index {class_index!r} is not an int in 0..{n_classes - 1}")
        if len(set(order)) != len(order):
            raise ValueError(f"{self.name}: class indices repeat a class: {order}")
        relabel = {old: new for new, old in enumerate(order)}
        keep = [p for p, label in enumerate(self.labels) if label in relabel]
        return ImageDataset(
            name=self.name if name is None else name,
            classnames=tuple(self.classnames[c] for c in order),
            labels=tuple(relabel[self.labels[p]] for p in keep),
            ids=tuple(self.ids[p] for p in keep),
            source=self.source,
        )

    def verify(self) -> None:
        """Check that every image can be found, without decoding; raise naming the missing files."""
        missing = self.source.missing(self.ids)
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ImageNotFoundError(
                f"{self.name}: {len(missing)} of {len(self)} images missing ({self.source!r}): {shown}{more}"
            )

    def fingerprint(self) -> str:
        """sha256 hex over name, class names, ids, labels and the source's content digest (computed once)."""
        return self._fingerprint

    @functools.cached_property
    def _fingerprint(self) -> str:
        digest = hashlib.sha256(_FINGERPRINT_VERSION.encode() + b"\n")
        header = {"name": self.name, "classnames": list(self.classnames)}
        digest.update(json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        for image_id, label in zip(self.ids, self.labels):
            digest.update(json.dumps([image_id, label], ensure_ascii=False).encode() + b"\n")
        digest.update(self.source.content_digest(self.ids).encode())
        return digest.hexdigest()
