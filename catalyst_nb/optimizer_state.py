"""One state layout for every optimizer, checked by one helper before anything changes.

Why: the gradient, LLM and catalyst optimizers are saved into one run folder and resumed together, so a
state must say what it is before any of it is read.  Each ``state_dict()`` is::

    {"version": int,      # bumped whenever a key of this optimizer's state changes
     "config": {...},     # the settings; loading under other settings is refused, with every difference
     "identity": {...},   # "optimizer" (the class) and what the state is bound to (features, classes, task)
     "state": {...}}      # the optimizer's own entries, exactly the keys its version names

:func:`check_state` checks the layout, then the optimizer (a gradient state given to the LLM optimizer is
one clear error), then the version, the state's keys (none missing, none unknown: a renamed key is a new
version, never a silently accepted gap), the config and the identity.  Each optimizer then checks the
*values* of its entries (tensor shapes, generator state) and only then applies them.

This module imports neither torch nor anything of the optimizers, so ``catalyst_nb.llm`` can use it.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

__all__ = ["LAYOUT", "StateError", "check_state", "config_differences", "pack_state"]

LAYOUT = ("version", "config", "identity", "state")


class StateError(ValueError):
    """A state that this optimizer must not load; the message names what is wrong."""


def pack_state(*, optimizer: str, version: int, config: Mapping[str, Any], identity: Mapping[str, Any],
               state: Mapping[str, Any]) -> dict[str, Any]:
    """The one layout, ``identity["optimizer"]`` naming the class that wrote it."""
    return {"version": version, "config": dict(config), "identity": {"optimizer": optimizer, **identity},
            "state": dict(state)}


def config_differences(saved: Mapping[str, Any], mine: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved, current)}`` for every key whose value differs or that only one side has."""
    keys = list(mine) + [k for k in saved if k not in mine]
    missing = object()
    out = {}
    for key in keys:
        a, b = saved.get(key, missing), mine.get(key, missing)
        if a != b:
            out[key] = (None if a is missing else a, None if b is missing else b)
    return out


def check_state(
    saved: Any,
    *,
    optimizer: str,
    version: int,
    keys: Iterable[str],
    config: Mapping[str, Any] | None,
    identity: Mapping[str, Any],
) -> Mapping[str, Any]:
    """Check ``saved`` against what this optimizer would write; return its ``state`` entries.

    Args:
        saved: what ``load_state_dict`` was given.
        optimizer: the loading class's name.
        version: the version it reads (exactly).
        keys: the entries its ``state`` holds in that version.
        config: its settings, compared key by key (``None``: not compared, e.g. ``strict=False``).
        identity: what the state must be bound to (besides ``optimizer``), compared key by key.

    Raises:
        StateError: the first thing that does not fit, with the saved and the current value.
    """
    if not isinstance(saved, Mapping):
        raise StateError(f"a {optimizer} state is a mapping with {list(LAYOUT)}, got {type(saved).__name__}")
    if set(saved) != set(LAYOUT):
        found = saved.get("version") if "version" in saved else None
        raise StateError(
            f"not a {optimizer} state of version {version}: it has {sorted(map(str, saved))}, the layout is "
            f"{list(LAYOUT)} (version {found!r}; states of earlier versions cannot be loaded)"
        )
    saved_identity = saved["identity"]
    if not isinstance(saved_identity, Mapping) or not isinstance(saved["state"], Mapping):
        raise StateError(f"{optimizer} state is damaged: identity and state must be mappings")
    owner = saved_identity.get("optimizer")
    if owner != optimizer:
        raise StateError(f"this is a {owner} state; a {optimizer} cannot load it")
    if saved["version"] != version:
        raise StateError(f"{optimizer} state of version {saved['version']!r}; this {optimizer} reads version "
                         f"{version} (states of other versions cannot be loaded)")
    expected = set(keys)
    missing, unknown = sorted(expected - set(saved["state"])), sorted(map(str, set(saved["state"]) - expected))
    if missing or unknown:
        raise StateError(f"{optimizer} state of version {version} is missing {missing}"
                         + (f" and has unknown entries {unknown}" if unknown else ""))
    if not isinstance(saved["config"], Mapping):
        raise StateError(f"{optimizer} state has a damaged config: {saved['config']!r}")
    if config is not None:
        diffs = config_differences(saved["config"], config)
        if diffs:
            raise StateError(f"{optimizer} state was saved with other settings (saved, current): {diffs}")
    for key, mine in identity.items():
        theirs = saved_identity.get(key)
        if theirs != mine:
            raise StateError(f"{optimizer} state was saved with other {key.replace('_', ' ')}: saved {_short(theirs)}, "
                             f"here {_short(mine)}")
    return saved["state"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
