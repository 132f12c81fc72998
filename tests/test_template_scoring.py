"""Batched template scoring equals encoding every prompt on its own, on both text-tower kinds."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from catalyst_nb.template_scoring import encode_template_batch, encode_templates
from catalyst_nb.templates import fill_template

TEMPLATES = ["a photo of a {}.", "{} in the wild", "a blurry photo of the {}, a type of thing.", "itap of a"]
CLASSES = ["dog", "ankle boot", "ankle sock", "t-shirt", "cat"]


def _reference(clip, templates, classnames):
    rows = []
    for template in templates:
        ids = clip.tokenizer([fill_template(template, c) for c in classnames])
        rows.append(F.normalize(clip.model.encode_text(ids).float(), dim=-1))
    return torch.stack(rows)


@pytest.mark.parametrize("chunk", [2, 256])
def test_batch_equals_one_prompt_at_a_time(tiny_clip, chunk):
    ours = encode_template_batch(tiny_clip, TEMPLATES, CLASSES, chunk=chunk)
    reference = _reference(tiny_clip, TEMPLATES, CLASSES)
    assert ours.shape == (len(TEMPLATES), len(CLASSES), tiny_clip.embed_dim)
    assert (ours - reference).abs().max().item() < 1e-5
    assert (ours.norm(dim=-1) - 1).abs().max().item() < 1e-5
    assert (reference[0, 1] - reference[0, 2]).abs().max().item() > 1e-3


def test_names_sharing_every_token_and_a_single_class(tiny_native):
    # Identical prompts: the common prefix reaches the end marker and must stop before it.
    ours = encode_template_batch(tiny_native, ["a photo of a {}."], ["dog", "dog"])
    assert (ours - _reference(tiny_native, ["a photo of a {}."], ["dog", "dog"])).abs().max().item() < 1e-5
    one = encode_template_batch(tiny_native, ["{}"], ["ankle boot"])
    assert (one - _reference(tiny_native, ["{}"], ["ankle boot"])).abs().max().item() < 1e-5


def test_encode_templates_is_the_normalized_mean(tiny_clip):
    per_template = encode_template_batch(tiny_clip, TEMPLATES[:2], CLASSES)
    averaged = encode_templates(tiny_clip, TEMPLATES[:2], CLASSES)
    assert (averaged - F.normalize(per_template.mean(0), dim=-1)).abs().max().item() < 1e-6


@pytest.mark.parametrize(
    "templates, classnames, chunk, match",
    [
        ([], CLASSES, 8, "at least one template"),
        ("a photo of a {}.", CLASSES, 8, "sequence of strings"),
        (["ok {}", " "], CLASSES, 8, "non-empty strings"),
        (TEMPLATES, [], 8, "classnames"),
        (TEMPLATES, CLASSES, 0, "chunk=0"),
    ],
)
def test_bad_input_is_named(tiny_native, templates, classnames, chunk, match):
    with pytest.raises(ValueError, match=match):
        encode_template_batch(tiny_native, templates, classnames, chunk=chunk)
