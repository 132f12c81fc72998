"""Files that must survive a crash and must not lie: atomic writes and checksummed state files.

Why: a run's ``state.pt`` is the only thing ``--resume`` has.  Written in place, a kill during the write
leaves half a file; loaded with plain pickle, a crafted file runs code; loaded without a checksum, a file
with a few flipped bytes continues training from garbage.  So:

* :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_write_json` (the package's one
  way to replace a file) write a temporary file in the target's folder, ``fsync`` it and ``os.replace`` it
  over the target: a reader sees the old file or the new one, never a mixture, and the temporary file is
  removed whatever goes wrong.
* :func:`save_state` / :func:`load_state` store a ``torch.save`` payload behind a one-line header that
  carries the payload's SHA-256 (one file, so state and checksum cannot be separated or replaced apart)::

      catalyst-nb-state 1 sha256=<64 hex digits> bytes=<payload length>\\n<torch.save payload>

  Loading verifies the header, the length and the checksum before unpickling, and then unpickles with
  ``weights_only=True`` (tensors, numbers, strings and plain containers only).  Every failure is one
  :class:`StateFileError` that names the file and what is wrong with it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["StateFileError", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "load_state",
           "save_state"]

_MAGIC = b"catalyst-nb-state 1 "
_HEADER = re.compile(rb"catalyst-nb-state 1 sha256=([0-9a-f]{64}) bytes=([0-9]+)\n")
_MAX_HEADER = 256


class StateFileError(ValueError):
    """A state file is missing, damaged, refused or not a state file; ``path`` names it."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        super().__init__(f"state file {os.fspath(path)}: {problem}")
        self.path = Path(path)
        self.problem = problem


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once: os.umask can only be read by setting it


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data`` so that readers and crashes see the old file or the new one, whole.

    The temporary file lives in the same folder (``os.replace`` is atomic only within one file system) and
    is removed on any failure, including a full disk or a ``KeyboardInterrupt`` during the write.  Missing
    parent folders are made.  Returns the path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write_bytes` for text (written as given: no newline translation)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """:func:`atomic_write_text` of ``data`` as indented JSON with sorted keys (other types as ``str``)."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; not possible on every platform, so best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_state(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` (a ``state_dict()``) to ``path`` atomically, with its checksum in a header line."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    header = _MAGIC + f"sha256={hashlib.sha256(payload).hexdigest()} bytes={len(payload)}\n".encode()
    atomic_write_bytes(path, header + payload)


def load_state(path: str | os.PathLike[str]) -> Any:
    """Read a file written by :func:`save_state`, verified, onto the CPU.

    Raises:
        StateFileError: the file is missing or unreadable, is not a state file, is truncated or damaged
            (checksum mismatch), or holds objects other than tensors and plain containers.
    """
    import pickle

    import torch

    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise StateFileError(path, "no such file") from None
    except IsADirectoryError:
        raise StateFileError(path, "is a folder, not a state file") from None
    except OSError as exc:
        raise StateFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    end = raw.find(b"\n", 0, _MAX_HEADER)
    match = _HEADER.fullmatch(raw[: end + 1]) if end >= 0 else None
    if match is None:
        if raw.startswith(_MAGIC):
            raise StateFileError(path, "damaged header")
        raise StateFileError(path, "not a catalyst_nb state file (no state header; it was not written by save_state)")
    payload = raw[end + 1 :]
    expected_len = int(match.group(2))
    if len(payload) != expected_len:
        raise StateFileError(path, f"truncated or extended: {len(payload)} bytes of payload, header says {expected_len}")
    if hashlib.sha256(payload).hexdigest() != match.group(1).decode():
        raise StateFileError(path, "checksum mismatch: the file is damaged")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StateFileError(path, f"refused: holds objects other than tensors and plain data ({first})") from None
    except Exception as exc:  # the checksum matched, so this is a payload torch cannot read at all
        raise StateFileError(path, f"unreadable payload ({type(exc).__name__}: {exc})") from None
