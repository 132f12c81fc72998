"""Observer registration shared by the three optimizers, without importing torch.

Hooks follow ``torch.optim``'s contract (``register_*_hook`` returns a handle whose ``remove()``
unregisters the hook, also usable as a context manager), but the LLM layer must import without torch,
so the handle lives here.  Each hook's name says which record it passes: ``register_step_hook`` a
``StepRecord``, ``register_llm_round_hook`` an ``LLMRound``, ``register_event_hook`` a round event.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any, Callable

__all__ = ["HookRegistry", "RemovableHandle"]

_ids = itertools.count()


class RemovableHandle:
    """Removes one hook from its registry; removing twice is harmless."""

    def __init__(self, registry: "OrderedDict[int, Callable[..., Any]]") -> None:
        self.id = next(_ids)
        self._registry = registry

    def remove(self) -> None:
        self._registry.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class HookRegistry:
    """An ordered set of callables, called in registration order with the same arguments."""

    def __init__(self) -> None:
        self._hooks: OrderedDict[int, Callable[..., Any]] = OrderedDict()

    def register(self, hook: Callable[..., Any]) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"a hook must be callable, got {hook!r}")
        handle = RemovableHandle(self._hooks)
        self._hooks[handle.id] = hook
        return handle

    def get(self, handle: RemovableHandle) -> Callable[..., Any] | None:
        return self._hooks.get(handle.id)

    def __call__(self, *args: Any) -> None:
        for hook in list(self._hooks.values()):
            hook(*args)

    def __len__(self) -> int:
        return len(self._hooks)
