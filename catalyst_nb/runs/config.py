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

__all__ = ["METHODS", "RESTART_POLICIES", "RunConfig", "load_toml"]

METHODS = ("zero-shot", "coop", "llm-only", "catalyst", "projection-restarts")
# optim.catalyst_config.RESTART_POLICIES, spelled out here so that the command line never imports torch
# (a test keeps the two equal)
RESTART_POLICIES = ("first", "best", "margin", "trust", "probe", "none")
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
        restart: restart rule override (``first``, ``best``, ``margin``, ``trust``, ``probe``, ``none``; see
            :mod:`catalyst_nb.optim.restart_rule`); ``None``: the preset's.
        restart_margin: relative scoring-loss margin of the ``margin`` and ``trust`` rules.
        probe_steps, probe_top: steps per probe branch and proposals probed, for ``probe``.
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
    restart_margin: float = 0.05
    probe_steps: int = 10
    probe_top: int = 2
    llm: str = "local"
    llm_kind: str = "completion"
    llm_model: str | None = None
    base_to_new: bool = False
    scoring_shots: int = 32
    device: str | None = None

    def __post_init__(self) -> None:
        problems = []

        def need(ok: bool, key: str, why: str) -> None:
            if not ok:
                problems.append(f"{key}={getattr(self, key)!r} {why}")

        need(self.method in METHODS, "method", f"is not one of {list(METHODS)}")
        need(self.preset in ("default", "paper"), "preset", "is not 'default' or 'paper'")
        need(self.data in _DATA, "data", f"is not one of {list(_DATA)}")
        for key in ("shots", "steps", "batch_size", "n_ctx", "scoring_shots", "probe_steps", "probe_top"):
            need(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, key, "must be an int >= 1")
        need(isinstance(self.rounds, int) and self.rounds >= 0, "rounds", "must be an int >= 0")
        need(isinstance(self.seed, int), "seed", "must be an int")
        need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0, "lr", "must be a finite number > 0")
        need(self.n_ctx <= 60 if isinstance(self.n_ctx, int) else False, "n_ctx", "must be <= 60 (the text tower's length)")
        need(self.restart is None or self.restart in RESTART_POLICIES, "restart", f"is not one of {list(RESTART_POLICIES)}")
        need(isinstance(self.restart_margin, (int, float)) and not isinstance(self.restart_margin, bool)
             and 0 <= self.restart_margin < math.inf, "restart_margin", "must be a finite number >= 0")
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


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML file's table as a dict; unreadable or invalid files raise ``ValueError`` naming the file."""
    try:
        with open(Path(path), "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"config file {os.fspath(path)} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {os.fspath(path)} is not valid TOML: {exc}") from None
