"""The fixed probe set of hand-written prompt templates used to measure prompt sensitivity.

Zero-shot accuracy is only a useful target for prompt tuning when the wording of the prompt changes it.
These templates span four kinds of wording, so that the spread between the best and the worst template
tells whether there is anything for a prompt optimizer to find:

* ``plain``: the short templates people write first;
* ``descriptive``: templates that describe the images (grey, small, product photos) or the domain;
* ``misleading``: templates that name a different object or negate the class;
* ``nonsense``: filler and made-up words around the class name.

None of them is among the captions the embedded model was trained with
(``scripts/train_embedded_model.py`` checks this), so every number is a zero-shot number.
The list is fixed: changing it changes the reported sensitivity, so add new probes at the end, never edit.
"""
from __future__ import annotations

__all__ = ["PROBE_TEMPLATES", "REFERENCE_TEMPLATE", "probe_templates"]

#: The template that zero-shot CLIP numbers are usually quoted with.
REFERENCE_TEMPLATE = "a photo of a {}."

#: ``(kind, template)`` pairs; ``{}`` is replaced by the class name.
PROBE_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("plain", REFERENCE_TEMPLATE),
    ("plain", "{}"),
    ("plain", "a {}."),
    ("plain", "this is a {}."),
    ("plain", "an example of a {}."),
    ("plain", "a picture of the {}."),
    ("descriptive", "a black and white photo of a {}, a type of clothing."),
    ("descriptive", "a low-resolution grayscale photo of a {}."),
    ("descriptive", "a centered product photo of a {} on a black background."),
    ("descriptive", "a photo of a {}, a type of fashion item."),
    ("descriptive", "a 28 by 28 pixel image of a {}."),
    ("descriptive", "an online shop thumbnail showing a {}."),
    ("misleading", "a photo of a car, not a {}."),
    ("misleading", "a photo of a dog next to a {}."),
    ("misleading", "a photo of a shoe, not a {}."),
    ("misleading", "a drawing of a {} printed on a t-shirt."),
    ("misleading", "a bag full of {}."),
    ("misleading", "this is not a {}, it is a coat."),
    ("nonsense", "zxq {} blorf"),
    ("nonsense", "{} {} {} {}"),
    ("nonsense", "qwerty asdf {}."),
    ("nonsense", "lorem ipsum dolor {} sit amet."),
    ("nonsense", "!!! {} ???"),
    ("nonsense", "the the the {}"),
)


def probe_templates(kind: str | None = None) -> list[str]:
    """The probe templates, all of them or those of one ``kind``."""
    kinds = {k for k, _ in PROBE_TEMPLATES}
    if kind is not None and kind not in kinds:
        raise ValueError(f"unknown probe kind {kind!r}; known kinds: {sorted(kinds)}")
    return [template for k, template in PROBE_TEMPLATES if kind is None or k == kind]
