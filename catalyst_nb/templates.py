"""Text templates: the one convention every layer shares.

A template is a string with ``{}`` where the class name goes (``"a photo of a {}."``); a template
without ``{}`` gets the class name appended.  The backbone fills templates to encode hard prompts, the
prompt learner writes its projection as one, and the LLM layer reads and proposes them.
"""

from __future__ import annotations

__all__ = ["HAND_WRITTEN_TEMPLATES", "PLACEHOLDER", "TemplateError", "check_template", "fill_template", "normalize_template", "placeholder_problem"]

PLACEHOLDER = "{}"

#: Generic hand-written templates (CLIP's and CoOp's usual wordings, nothing dataset-specific): the
#: zero-shot method picks the best of these on the scoring split and reports it on the test split.
HAND_WRITTEN_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "{}",
    "a {}.",
    "this is a {}.",
    "a picture of the {}.",
    "a photo of the {}.",
    "a close-up photo of a {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of a small {}.",
)


def fill_template(template: str, class_name: str) -> str:
    """The prompt for one class: ``{}`` replaced by the name, or the name appended."""
    if PLACEHOLDER in template:
        return template.replace(PLACEHOLDER, class_name)
    return f"{template.rstrip()} {class_name}"


def normalize_template(template: str) -> str:
    """A comparison key under which two templates count as "the same" for the text encoder's purposes.

    Case, whitespace, a trailing full stop and an explicit trailing ``{}`` do not distinguish
    templates: "A photo of a" and "a photo of a {}." give the LLM no new idea.
    """
    text = " ".join(template.casefold().split())
    text = text.rstrip(" .")
    if PLACEHOLDER not in text:
        text = f"{text} {PLACEHOLDER}".strip()
    return text


class TemplateError(ValueError):
    """A text is not a usable template (empty, two class slots, stray braces)."""


def placeholder_problem(text: str) -> str | None:
    """Why ``text`` cannot be a template because of its braces, or ``None`` when it can.

    One rule for every layer (the LLM reply parser, a person's suggestion, an edited restart): at most
    one ``{}`` and no other brace, since the class name is substituted at exactly one place.
    """
    count = text.count(PLACEHOLDER)
    if count > 1:
        return f"{count} placeholders"
    stray = text.replace(PLACEHOLDER, "")
    if "{" in stray or "}" in stray:
        return "stray brace"
    return None


def check_template(text: object) -> str:
    """``text`` with its whitespace collapsed, or :class:`TemplateError` naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise TemplateError(f"a template must be a non-empty str, got {text!r}")
    text = " ".join(text.split())
    problem = placeholder_problem(text)
    if problem is not None:
        raise TemplateError(f"a template may contain {PLACEHOLDER} at most once and no other brace ({problem}): {text!r}")
    return text
