"""Reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed.

Format: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one big-endian
uint32 per dimension, then the data in C order. Compression is recognised from the gzip magic bytes, not
from the file name, because copies in the wild are named both ways.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from .errors import CorruptDataError, DatasetNotFoundError

__all__ = ["read_idx"]

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08


def read_idx(path: str | os.PathLike[str], *, ndim: int | None = None) -> np.ndarray:
    """The uint8 array stored in IDX file ``path``; ``ndim`` if given is checked against the header."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as error:
        raise DatasetNotFoundError(f"IDX file not found: {path}") from error
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise CorruptDataError(f"{path}: damaged gzip data: {error}") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise CorruptDataError(f"{path}: not an IDX file (header {raw[:4].hex() or 'empty'})")
    type_code, n_dims = raw[2], raw[3]
    if type_code != _UBYTE:
        raise CorruptDataError(f"{path}: IDX type code 0x{type_code:02x} is not unsigned byte (0x08)")
    if ndim is not None and n_dims != ndim:
        raise CorruptDataError(f"{path}: expected a {ndim}-dimensional IDX array, header says {n_dims}")
    header_size = 4 + 4 * n_dims
    if len(raw) < header_size:
        raise CorruptDataError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=n_dims, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header_size != expected:
        raise CorruptDataError(
            f"{path}: IDX header declares shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw) - header_size} data bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape).copy()
