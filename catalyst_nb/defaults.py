"""The names of the offline defaults, importable without torch.

The command line's parser shows them as defaults; keeping them out of :mod:`catalyst_nb.backbone` (which
imports torch) lets a mistyped argument be reported before any heavy import.
"""
from __future__ import annotations

__all__ = ["EMBEDDED_MODEL", "EMBEDDED_TAG"]

#: The offline default: a small CLIP with a frozen pretrained MiniLM text tower (see ``catalyst_nb/models``).
EMBEDDED_MODEL = "catalyst-fmnist"
#: Tag of the weights that ship inside the package for package models.
EMBEDDED_TAG = "embedded"
