"""One run's settings as data: a frozen config with ``[gradient]``, ``[catalyst]`` and ``[llm]`` tables.

A run is fully described by its :class:`RunConfig` (plus the models and data it names), the same in a
notebook (:class:`~catalyst_nb.experiment.Experiment`), on the command line (``catalyst-nb run``, whose
flat flags such as ``--lr`` name the tables' keys) and in a sweep cell.  It is saved in its run folder;
``--resume`` compares the saved config with the one given and names every difference, so a run is never
continued with other settings by accident.

A TOML file holds the same shape::

    method = "catalyst"
    shots = 16
    steps = 250

    [gradient]
    n_ctx = 4
    ctx_init = "a photo of a"

    [catalyst]
    preset = "default"
    rounds = 3

    [llm]
    source = "local"      # or an http(s):// URL of an OpenAI-compatible server, or "none"

The tables' keys may also be given flat (``lr = 0.002``, ``rounds = 3``, ``llm = "local"``,
``llm_kind``, ``llm_model``): that is how CLI flags, older files and sweep grids name them.  Every default
is defined here, once: the notebook, the command line and the sweeps all start from these values.
"""
from __future__ import annotations

import math
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from catalyst_nb.keys import check_known_keys
from catalyst_nb.optim.catalyst_config import RESTART_POLICIES

__all__ = ["METHODS", "RESTART_POLICIES", "RunConfig", "GradientSettings", "CatalystSettings", "LLMSettings", "FLAT_KEYS", "load_toml"]

METHODS = ("zero-shot", "coop", "llm-only", "catalyst", "projection-restarts", "random-edits")
# local LLM servers a run starts itself: the embedded Gemma 3 270M base model, the Qwen2.5 1.5B chat model
LOCAL_LLMS = ("local", "local-chat")
_DATA = ("embedded", "fashion-mnist")


@dataclass(frozen=True)
class GradientSettings:
    """The soft prompt and its gradient descent (CoOp's values; ``n_ctx`` 4 from "a photo of a").

    ``warmup_steps=None`` leaves the warm-up to the gradient optimizer's one rule (5 steps, fewer for very
    short runs); ``schedule="epoch", drop_last=True`` is CoOp's exact schedule.
    """

    n_ctx: int = 4
    ctx_init: str = "a photo of a"
    lr: float = 0.002
    batch_size: int = 32
    warmup_steps: int | None = None
    schedule: str = "step"
    drop_last: bool = False


@dataclass(frozen=True)
class CatalystSettings:
    """The catalyst's layout: a preset, with the rounds and the restart policy on top.

    ``rounds`` also sets the restart points of ``projection-restarts`` and the evaluation points of CoOp;
    ``restart=None`` keeps the preset's rule (see :mod:`catalyst_nb.optim.restart_rule`);
    ``restart_margin`` is the relative scoring-loss margin of ``margin`` and ``trust``;
    ``probe_steps``/``probe_top`` (steps per branch, proposals probed) are ``probe``'s.
    ``momentum`` (``keep`` or ``reset``) and ``restart_schedule`` (``continue`` or ``rewarm``) say what a
    restart does to the optimizer's momentum and learning-rate schedule; ``None`` keeps the preset's.
    ``approval`` says who decides each restart: ``auto`` (the policy) or ``human`` (a headless run waits
    in its folder for ``catalyst-nb approve`` or a notebook attached to it; a notebook's own run returns
    and the approval panel decides); ``approval_timeout`` (seconds, headless) takes the policy's
    recommendation when nobody answers in time, recorded as decided by the timeout.
    """

    preset: str = "default"
    rounds: int = 3
    restart: str | None = None
    restart_margin: float = 0.05
    probe_steps: int = 10
    probe_top: int = 2
    momentum: str | None = None
    restart_schedule: str | None = None
    approval: str = "auto"
    approval_timeout: float | None = None


@dataclass(frozen=True)
class LLMSettings:
    """Where the LLM comes from: ``local`` (the embedded Gemma server, started lazily for the run and
    stopped with it), ``local-chat`` (the Qwen2.5-Coder-1.5B-Instruct chat model of the extra
    ``local-chat``, likewise), an ``http(s)://`` URL of an OpenAI-compatible server, or ``none``; ``kind``
    is ``completion`` or ``chat`` for a URL (``local`` is a completion model, ``local-chat`` a chat model).  ``samples`` (calls per
    round) and ``temperature`` override the preset's LLM settings when given."""

    source: str = "local"
    kind: str = "completion"
    model: str | None = None
    samples: int | None = None
    temperature: float | None = None


_TABLES: dict[str, type] = {"gradient": GradientSettings, "catalyst": CatalystSettings, "llm": LLMSettings}
# flat name (CLI flag, older files, sweep grids) -> (table, key)
FLAT_KEYS: dict[str, tuple[str, str]] = {
    **{f.name: ("gradient", f.name) for f in fields(GradientSettings)},
    **{f.name: ("catalyst", f.name) for f in fields(CatalystSettings)},
    "llm": ("llm", "source"), "llm_kind": ("llm", "kind"), "llm_model": ("llm", "model"),
    "llm_samples": ("llm", "samples"), "llm_temperature": ("llm", "temperature"),
}
# keys where the word "none" (TOML has no null) means None
_NONE_TOP = ("pretrained", "device", "data_root")
_NONE_TABLE = ("restart", "warmup_steps", "model", "samples", "temperature", "approval_timeout", "momentum",
               "restart_schedule")


def _split(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Keyword settings (flat, nested or both) as top-level values and one dict per table; a flat key
    wins over the same key in its table (a CLI flag over the file); unknown keys are named."""
    top_keys = {f.name for f in fields(RunConfig)} - set(_TABLES)
    check_known_keys(settings, top_keys | set(_TABLES) | set(FLAT_KEYS), "run settings")
    top: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {name: {} for name in _TABLES}
    nested = {k: v for k, v in settings.items() if k in _TABLES and isinstance(v, (_TABLES[k], Mapping))}
    for name, given in nested.items():
        table = asdict(given) if isinstance(given, _TABLES[name]) else dict(given)
        check_known_keys(table, (f.name for f in fields(_TABLES[name])), f"[{name}] settings")
        tables[name].update(table)
    for key, value in settings.items():
        if key in nested:
            continue
        if key in FLAT_KEYS:
            table, inner = FLAT_KEYS[key]
            tables[table][inner] = value
        else:
            top[key] = value
    top = {k: (None if v == "none" and k in _NONE_TOP else v) for k, v in top.items()}
    for name in _TABLES:
        tables[name] = {k: (None if v == "none" and k in _NONE_TABLE else v) for k, v in tables[name].items()}
    return top, tables


@dataclass(frozen=True, init=False)
class RunConfig:
    """Settings of one run.

    Attributes:
        method: ``zero-shot`` (best hand-written template on the scoring split), ``coop`` (gradient stages
            only), ``llm-only`` (the LLM alone, OPRO-style, as many calls as the catalyst makes),
            ``catalyst`` (the paper's method), ``projection-restarts`` (restarts from the best projection
            at the same points, no LLM: the control that shows the LLM's own share), ``random-edits``
            (the catalyst with random word edits of the shown templates in place of the LLM's proposals:
            the control for whether the LLM does more than perturb).
        model, pretrained: the CLIP model (``catalyst-fmnist``/``embedded`` ship with the package).
        data, data_root: ``embedded`` (a Fashion-MNIST subset in the package) or ``fashion-mnist`` (IDX files).
        shots, seed: images per class of the training split, and the seed of everything random.
        steps: total gradient steps; every gradient method gets the same number (probe steps count).
        base_to_new: train on the first half of the classes and report base, new and their harmonic mean.
        scoring_shots: images per class of the scoring split (drawn from the held-out ``val`` split).
        device: ``cpu``, ``cuda[:N]``, ``mps``, or ``None`` for the best available.
        gradient, catalyst, llm: the tables (:class:`GradientSettings`, :class:`CatalystSettings`,
            :class:`LLMSettings`).

    Built from keywords, flat or nested: ``RunConfig(method="coop", lr=0.01)`` and
    ``RunConfig(method="coop", gradient={"lr": 0.01})`` are the same config.
    """

    method: str = "catalyst"
    model: str = "catalyst-fmnist"
    pretrained: str | None = "embedded"
    data: str = "embedded"
    data_root: str | None = None
    shots: int = 16
    seed: int = 1
    steps: int = 250
    base_to_new: bool = False
    scoring_shots: int = 32
    device: str | None = None
    gradient: GradientSettings = field(default_factory=GradientSettings)
    catalyst: CatalystSettings = field(default_factory=CatalystSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)

    def __init__(self, **settings: Any) -> None:
        top, tables = _split(settings)
        for f in fields(self):
            if f.name in _TABLES:
                object.__setattr__(self, f.name, _TABLES[f.name](**tables[f.name]))
            else:
                object.__setattr__(self, f.name, top.get(f.name, f.default))
        _check_types(self)
        self._check()

    def _check(self) -> None:
        problems: list[str] = []
        g, c, l = self.gradient, self.catalyst, self.llm

        def need(ok: bool, key: str, value: Any, why: str) -> None:
            if not ok:
                problems.append(f"{key}={value!r} {why}")

        def count(key: str, value: Any, low: int) -> None:
            need(isinstance(value, int) and not isinstance(value, bool) and value >= low, key, value,
                 f"must be an int >= {low}")

        need(self.method in METHODS, "method", self.method, f"is not one of {list(METHODS)}")
        need(self.data in _DATA, "data", self.data, f"is not one of {list(_DATA)}")
        for key in ("shots", "steps", "scoring_shots"):
            count(key, getattr(self, key), 1)
        need(isinstance(self.seed, int), "seed", self.seed, "must be an int")
        need(isinstance(self.base_to_new, bool), "base_to_new", self.base_to_new, "must be true or false")
        need(self.device is None or str(self.device).split(":")[0] in ("cpu", "cuda", "mps"), "device", self.device,
             "must be cpu, cuda[:N] or mps")
        count("batch_size", g.batch_size, 1)
        count("n_ctx", g.n_ctx, 1)
        need(not isinstance(g.n_ctx, int) or g.n_ctx <= 60, "n_ctx", g.n_ctx, "must be <= 60 (the text tower's length)")
        need(isinstance(g.lr, (int, float)) and math.isfinite(g.lr) and g.lr > 0, "lr", g.lr,
             "must be a finite number > 0")
        need(isinstance(g.ctx_init, str), "ctx_init", g.ctx_init, "must be a string ('' for a random context)")
        need(g.warmup_steps is None or (isinstance(g.warmup_steps, int) and 0 <= g.warmup_steps < self.steps),
             "warmup_steps", g.warmup_steps, "must be an int in 0..steps-1 (or none for the default)")
        need(g.schedule in ("step", "epoch"), "schedule", g.schedule, "is not 'step' or 'epoch'")
        need(isinstance(g.drop_last, bool), "drop_last", g.drop_last, "must be true or false")
        need(c.preset in ("default", "paper"), "preset", c.preset, "is not 'default' or 'paper'")
        count("rounds", c.rounds, 0)
        need(c.restart in (None, *RESTART_POLICIES), "restart", c.restart, f"is not one of {list(RESTART_POLICIES)}")
        need(isinstance(c.restart_margin, (int, float)) and not isinstance(c.restart_margin, bool)
             and 0 <= c.restart_margin < math.inf, "restart_margin", c.restart_margin, "must be a finite number >= 0")
        count("probe_steps", c.probe_steps, 1)
        count("probe_top", c.probe_top, 1)
        need(c.momentum in (None, "keep", "reset"), "momentum", c.momentum, "is not 'keep' or 'reset'")
        need(c.restart_schedule in (None, "continue", "rewarm"), "restart_schedule", c.restart_schedule,
             "is not 'continue' or 'rewarm'")
        need(c.approval in ("auto", "human"), "approval", c.approval, "must be 'auto' or 'human'")
        if c.approval == "human" and self.method not in ("catalyst", "projection-restarts", "random-edits"):
            problems.append(f"approval='human' needs a method with restarts (catalyst, projection-restarts, random-edits), "
                            f"got method={self.method!r}")
        timeout = c.approval_timeout
        need(timeout is None or (isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
                                 and math.isfinite(timeout) and timeout >= 0), "approval_timeout", timeout,
             "must be a number of seconds >= 0 (or none to wait as long as it takes)")
        need(l.source in LOCAL_LLMS + ("none",) or str(l.source).startswith(("http://", "https://")), "llm", l.source,
             "must be 'local', 'local-chat', 'none' or an http(s):// URL")
        need(l.kind in ("completion", "chat"), "llm_kind", l.kind, "must be 'completion' or 'chat'")
        if l.samples is not None:
            count("llm_samples", l.samples, 1)
        need(l.temperature is None or (isinstance(l.temperature, (int, float)) and math.isfinite(l.temperature)
                                       and l.temperature >= 0), "llm_temperature", l.temperature,
             "must be a finite number >= 0 (or none for the preset's)")
        if self.uses_llm and l.source == "none":
            problems.append(f"method={self.method!r} needs an LLM (llm='local' or a URL), got llm='none'")
        if (self.method in ("catalyst", "llm-only", "projection-restarts", "random-edits") and isinstance(c.rounds, int)
                and c.rounds < 1):
            problems.append(f"method={self.method!r} needs rounds >= 1")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def uses_llm(self) -> bool:
        return self.method in ("catalyst", "llm-only")

    def to_dict(self) -> dict[str, Any]:
        """The nested form (what ``config.json`` and a TOML file hold)."""
        return asdict(self)

    def flat(self) -> dict[str, Any]:
        """Every setting under its flat name (the CLI flag's), for tables and messages."""
        out = {k: v for k, v in self.to_dict().items() if k not in _TABLES}
        for flat_key, (table, inner) in FLAT_KEYS.items():
            out[flat_key] = getattr(getattr(self, table), inner)
        return out

    def replace(self, **settings: Any) -> "RunConfig":
        """A copy with ``settings`` (flat or nested, as for the constructor) changed."""
        top, tables = _split(settings)
        mine = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _TABLES}
        return RunConfig(**{**mine, **top}, **{name: {**asdict(getattr(self, name)), **tables[name]} for name in _TABLES})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        """From the nested form, the flat form or a mix of both; unknown keys are named in the error."""
        return cls(**dict(data))

    @classmethod
    def known_keys(cls) -> tuple[str, ...]:
        """Every key a run config accepts at its top level (the tables' names and the flat names)."""
        return tuple(f.name for f in fields(cls)) + tuple(k for k in FLAT_KEYS if k not in _TABLES)

    def differences(self, other: "RunConfig") -> dict[str, tuple[Any, Any]]:
        """``{key: (mine, other's)}`` for every setting that differs (table keys as ``table.key``)."""

        def leaves(config: RunConfig) -> dict[str, Any]:
            d = config.to_dict()
            out = {k: v for k, v in d.items() if k not in _TABLES}
            for name in _TABLES:
                out.update({f"{name}.{k}": v for k, v in d[name].items()})
            return out

        a, b = leaves(self), leaves(other)
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


# what each annotation accepts; a bool is refused where a number is expected (TOML ``shots = true`` is a
# mistake, and Python would count it as 1)
_ACCEPTS: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((str,), "a string"), "int": ((int,), "an integer"), "float": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
}
_FLAT_NAME = {(table, inner): flat for flat, (table, inner) in FLAT_KEYS.items()}


def _check_types(config: RunConfig) -> None:
    """Every setting of the type its field declares, checked before any value is compared (named by its
    flat name, the CLI flag's)."""
    settings = [(f.name, f.type, getattr(config, f.name)) for f in fields(config) if f.name not in _TABLES]
    for name in _TABLES:
        table = getattr(config, name)
        settings += [(_FLAT_NAME[(name, f.name)], f.type, getattr(table, f.name)) for f in fields(table)]
    problems = []
    for key, annotation, value in settings:
        kind, _, optional = str(annotation).partition(" | ")
        if value is None and optional == "None":
            continue
        accepted, what = _ACCEPTS[kind]
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            problems.append(f"{key}={value!r} must be {what}, not {type(value).__name__}")
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
