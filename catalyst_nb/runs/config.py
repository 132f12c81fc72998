"""One run's settings as a frozen dataclass: the same keys in a TOML file, as CLI flags and in a sweep.

A run is fully described by its :class:`RunConfig` (plus the models and data it names), which is saved in
its folder; ``--resume`` compares the saved config with the one given and names every difference, so a
run is never continued with other settings by accident.
"""
from __future__ import annotations

import math
import os
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping
from catalyst_nb.keys import check_known_keys

__all__ = ["METHODS", "RunConfig", "load_toml"]

METHODS = ("zero-shot", "coop", "llm-only", "catalyst", "projection-restarts")
_DATA = ("embedded", "fashion-mnist")


@dataclass(frozen=True)
class RunConfig:
    """Settings of one run.

    Attributes:
        method: ``zero-shot`` (best hand-written template on the scoring split), ``coop`` (gradient stages
            only), ``llm-only`` (the LLM alone, OPRO-style, as many calls as the catalyst makes),
            ``catalyst`` (the paper's method), ``projection-restarts`` (restarts from the best projection
            at the same points, no LLM: the control that shows the LLM's own share).
        preset: the catalyst preset (``default`` or ``paper``).
        steps: total gradient steps; every gradient method gets the same number (probe steps count).
        rounds: LLM rounds (catalyst, llm-only) or restart points (projection-restarts); CoOp gets
            per-stage evaluations at the same points.
        restart: restart policy override (``first``, ``best``, ``probe``, ``none``); ``None``: the preset's.
        llm: ``local`` (the embedded Gemma server, started for the run), an ``http(s)://`` URL of an
            OpenAI-compatible server, or ``none``.
        llm_kind: ``completion`` or ``chat`` for a URL (``local`` is a completion model).
        base_to_new: train on the first half of the classes and report base, new and their harmonic mean.
        scoring_shots: images per class of the scoring split (drawn from the held-out ``val`` split).
    """

    method: str = "catalyst"
    preset: str = "default"
    model: str = "catalyst-fmnist"
    pretrained: str | None = "embedded"
    data: str = "embedded"
    data_root: str | None = None
    shots: int = 16
    seed: int = 1
    n_ctx: int = 8
    ctx_init: str = "a photo of a"
    steps: int = 250
    batch_size: int = 32
    lr: float = 0.002
    rounds: int = 3
    restart: str | None = None
    probe_steps: int = 0
    probe_top: int = 0
    llm: str = "local"
    llm_kind: str = "completion"
    llm_model: str | None = None
    base_to_new: bool = False
    scoring_shots: int = 32
    device: str | None = None

    def __post_init__(self) -> None:
        _check_types(self)
        problems = []

        def need(ok: bool, key: str, why: str) -> None:
            if not ok:
                problems.append(f"{key}={getattr(self, key)!r} {why}")

        need(self.method in METHODS, "method", f"is not one of {list(METHODS)}")
        need(self.preset in ("default", "paper"), "preset", "is not 'default' or 'paper'")
        need(self.data in _DATA, "data", f"is not one of {list(_DATA)}")
        for key in ("shots", "steps", "batch_size", "n_ctx", "scoring_shots"):
            need(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, key, "must be an int >= 1")
        need(isinstance(self.rounds, int) and self.rounds >= 0, "rounds", "must be an int >= 0")
        need(isinstance(self.seed, int), "seed", "must be an int")
        need(math.isfinite(self.lr) and self.lr > 0, "lr", "must be a finite number > 0")
        need(self.n_ctx <= 60 if isinstance(self.n_ctx, int) else False, "n_ctx", "must be <= 60 (the text tower's length)")
        need(self.restart in (None, "first", "best", "probe", "none"), "restart", "is not first/best/probe/none")
        need(self.llm in ("local", "none") or str(self.llm).startswith(("http://", "https://")), "llm",
             "must be 'local', 'none' or an http(s):// URL")
        need(self.llm_kind in ("completion", "chat"), "llm_kind", "must be 'completion' or 'chat'")
        need(self.device is None or str(self.device).split(":")[0] in ("cpu", "cuda", "mps"), "device",
             "must be cpu, cuda[:N] or mps")
        if self.method in ("catalyst", "llm-only") and self.llm == "none":
            problems.append(f"method={self.method!r} needs an LLM (llm='local' or a URL), got llm='none'")
        if self.method in ("catalyst", "llm-only", "projection-restarts") and self.rounds < 1:
            problems.append(f"method={self.method!r} needs rounds >= 1")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def uses_llm(self) -> bool:
        return self.method in ("catalyst", "llm-only")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        check_known_keys(data, (f.name for f in fields(cls)), "run settings")
        values = {k: (None if v == "none" and k in ("pretrained", "restart", "device", "llm_model") else v)
                  for k, v in data.items()}
        return cls(**values)

    def differences(self, other: "RunConfig") -> dict[str, tuple[Any, Any]]:
        """``{key: (mine, other's)}`` for every setting that differs."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


# what each annotation accepts; a bool is refused where a number is expected (TOML ``shots = true`` is a
# mistake, and Python would count it as 1)
_ACCEPTS: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((str,), "a string"), "str | None": ((str, type(None)), "a string"),
    "int": ((int,), "an integer"), "float": ((int, float), "a number"), "bool": ((bool,), "true or false"),
}


def _check_types(config: RunConfig) -> None:
    """Every setting of the type its field declares, checked before any value is compared."""
    problems = []
    for f in fields(config):
        value = getattr(config, f.name)
        accepted, what = _ACCEPTS[str(f.type)]
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            problems.append(f"{f.name}={value!r} must be {what}, not {type(value).__name__}")
    if problems:
        raise ValueError("; ".join(problems))


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML file's table as a dict; unreadable or invalid files raise ``ValueError`` naming the file."""
    name = os.fspath(path)
    try:
        with open(Path(path), "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"config file {name} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"config file {name} is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"config file {name} is not a text file ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {name} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ValueError(f"config file {name} cannot be read ({exc.strerror or exc})") from None
