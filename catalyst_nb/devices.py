"""Device choice in one place: CUDA where there is one (a GPU notebook kernel), the CPU otherwise."""
from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> ``cuda`` when available else ``cpu``; anything else is parsed and checked.

    Asking for CUDA on a machine without it is an error here rather than a crash deep inside a step.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available on this machine")
    return dev
