"""Text templates: the one convention every layer shares.

A template is a string with ``{}`` where the class name goes (``"a photo of a {}."``); a template
without ``{}`` gets the class name appended.  The backbone fills templates to encode hard prompts, the
prompt learner writes its projection as one, and the LLM layer reads and proposes them.
"""

from __future__ import annotations

__all__ = ["PLACEHOLDER", "fill_template", "normalize_template"]

PLACEHOLDER = "{}"


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
