"""The backbone layer: loading by name/tag/file with clear errors, and text encoding from embeddings."""
from __future__ import annotations

import json
import time

import pytest
import torch

from catalyst_nb.backbone import (
    ModelNotFoundError,
    WeightsUnavailableError,
    encode_text_from_embeddings,
    list_package_models,
    load_clip,
    real_prompt_length,
)
from catalyst_nb.devices import resolve_device
from catalyst_nb.template_scoring import encode_templates

PROMPTS = [
    "a photo of a dog.",
    "x",
    "a blurry black and white photo of the ankle boot, a type of footwear.",
    "zxq blorf {} !!",
]


def test_package_models_are_listed():
    assert {"tiny-native", "tiny-hf"} <= set(list_package_models())


@pytest.mark.parametrize("truncate", [True, False])
def test_encode_from_embeddings_matches_encode_text(tiny_clip, truncate):
    ids = tiny_clip.tokenizer(PROMPTS)
    reference = tiny_clip.model.encode_text(ids)
    ours = encode_text_from_embeddings(tiny_clip, tiny_clip.token_embedding(ids), ids, truncate=truncate)
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max().item() < 1e-5
    # not a trivially constant output: different prompts give different features
    assert (reference[0] - reference[1]).abs().max().item() > 1e-3


def test_truncation_encodes_only_the_longest_real_prompt(tiny_clip):
    ids = tiny_clip.tokenizer(PROMPTS[:2])
    n = real_prompt_length(tiny_clip, ids)
    longest = len(tiny_clip.tokenizer.encode(PROMPTS[0])) + 2
    assert n == longest < ids.shape[1]
    full = encode_text_from_embeddings(tiny_clip, tiny_clip.token_embedding(ids), ids, truncate=False)
    cut = encode_text_from_embeddings(tiny_clip, tiny_clip.token_embedding(ids[:, :n]), ids[:, :n], truncate=False)
    assert (full - cut).abs().max().item() < 1e-5


def test_truncation_is_off_when_pooling_reads_padding(tiny_native, monkeypatch):
    ids = tiny_native.tokenizer(PROMPTS[:2])
    monkeypatch.setattr(tiny_native.model, "text_pool_type", "last")
    assert real_prompt_length(tiny_native, ids) == ids.shape[1]


def test_encode_rejects_misaligned_inputs(tiny_native):
    ids = tiny_native.tokenizer(["a"])
    with pytest.raises(ValueError, match="disagree"):
        encode_text_from_embeddings(tiny_native, tiny_native.token_embedding(ids)[:, :5], ids)


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ModelNotFoundError, match="ViT-B-32"):
        load_clip("ViT-B-32x", None)


def test_unknown_pretrained_tag_lists_known_tags():
    with pytest.raises(ModelNotFoundError, match="openai"):
        load_clip("ViT-B-32", "no_such_tag")


def test_missing_checkpoint_path_is_named():
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_clip("ViT-B-32", "/nonexistent/weights.pt")


def test_embedded_tag_only_for_package_models():
    with pytest.raises(ModelNotFoundError, match="embedded"):
        load_clip("ViT-B-32", "embedded")


def test_offline_pretrained_tag_fails_fast_with_advice():
    started = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="pretrained=<path"):
        load_clip("ViT-B-32", "openai", device="cpu")
    assert time.monotonic() - started < 60


def test_local_checkpoint_file_through_open_clip(tmp_path, tiny_native):
    """A user's own open_clip model config plus checkpoint file takes the open_clip factory path."""
    import open_clip

    from catalyst_nb.backbone import _package_file

    cfg = json.loads(_package_file("configs", "tiny-native.json").read_text())
    (tmp_path / "user-tiny-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "user-tiny-clip.json")
    ckpt = tmp_path / "user.pt"
    torch.save({"state_dict": tiny_native.model.state_dict()}, ckpt)
    loaded = load_clip("user-tiny-clip", str(ckpt), device="cpu")
    ids = loaded.tokenizer(["a photo of a cat."])
    assert torch.allclose(loaded.model.encode_text(ids), tiny_native.model.encode_text(ids), atol=1e-6)
    assert not any(p.requires_grad for p in loaded.model.parameters())


def test_package_model_checkpoint_round_trip(tmp_path, tiny_hf):
    state = {k: v for k, v in tiny_hf.model.state_dict().items() if not k.startswith("text.transformer.")}
    ckpt = tmp_path / "tiny.pt"
    torch.save(state, ckpt)
    loaded = load_clip("tiny-hf", str(ckpt), device="cpu")
    assert torch.equal(loaded.model.visual.conv1.weight, tiny_hf.model.visual.conv1.weight)
    assert loaded.image_weights_id == tiny_hf.image_weights_id


def test_image_weights_id_changes_with_weights():
    a = load_clip("tiny-native", None, device="cpu")
    b = load_clip("tiny-native", None, device="cpu")  # a fresh random init
    assert a.image_weights_id != b.image_weights_id


def test_encode_templates_averages_and_normalises(tiny_native):
    w = encode_templates(tiny_native, ["a photo of a {}.", "{} here"], ["cat", "dog", "ankle boot"])
    assert w.shape == (3, 64)
    assert torch.allclose(w.norm(dim=-1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError):
        encode_templates(tiny_native, [], ["cat"])


def test_device_resolution():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
