"""Cells as Ray tasks, so the same sweep runs across the machines of a Ray cluster.

Each cell is one task that declares what it needs (``[resources] num_cpus / num_gpus`` of the sweep
file), so Ray places it on a node with room.  Nodes need not share a file system: the cell's folder
travels with the task as a small archive (so an interrupted cell resumes wherever it lands) and comes
back the same way, and the driver unpacks it into the same layout the local executor writes.

An address that does not answer is reported in seconds: a short TCP connect is tried before
``ray.init``, which would otherwise wait a long time for a head node that is not there.  A cell that
needs the embedded LLM starts it on its own node (a server on the driver's loopback address is not
reachable from other machines); an ``llm`` URL is used as given.

Ray is an optional extra: ``pip install 'catalyst_nb[ray]'``.
"""
from __future__ import annotations

import io
import os
import shutil
import socket
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from .cell import CellFunction, CellOutcome, CellTask, run_cell

__all__ = ["RayExecutor", "RayAddressError", "check_ray_address", "pack_folder", "unpack_folder"]

_INSTALL_HINT = "install the optional extra: pip install 'catalyst_nb[ray]'"


class RayAddressError(ValueError):
    """A Ray address that is malformed or does not answer."""


def _host_port(address: str) -> tuple[str, int]:
    text = address if "://" in address else f"ray://{address}"
    parts = urlsplit(text)
    if not parts.hostname or parts.port is None:
        raise RayAddressError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or 'auto'")
    return parts.hostname, parts.port


def check_ray_address(address: str, *, timeout: float = 3.0) -> None:
    """Raise :class:`RayAddressError` unless something accepts a TCP connection at ``address``.

    ``auto`` is resolved as Ray resolves it (``RAY_ADDRESS``, else the cluster started on this machine).
    """
    if address == "auto":
        address = _resolve_auto()
        if address is None:
            return
    try:
        host, port = _host_port(address)
    except ValueError as exc:  # urlsplit's own error for a port out of range
        raise RayAddressError(f"Ray address {address!r}: {exc}") from None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise RayAddressError(
            f"no Ray cluster answers at {address!r} ({exc}); start one with `ray start --head` or check the address"
        ) from None


def _resolve_auto() -> str | None:
    """What ``auto`` means to Ray here: ``RAY_ADDRESS``, else the cluster last started on this machine.

    Ray's own resolver is private API; when it is missing (another Ray version) the check is left
    to ``ray.init``, which fails fast by itself when no cluster is found.
    """
    env = os.environ.get("RAY_ADDRESS", "")
    if env and env != "auto":
        return env
    try:
        from ray._private.services import get_ray_address_from_environment
    except ImportError:
        return None
    try:
        resolved = get_ray_address_from_environment("auto", None)
    except ConnectionError as exc:
        raise RayAddressError(f"--address auto: {exc}".splitlines()[0]) from None
    return None if resolved in (None, "auto") else str(resolved)


def pack_folder(folder: str | Path) -> bytes | None:
    """The folder's files as a gzipped tar (``None`` for a missing or empty folder)."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def unpack_folder(archive: bytes | None, folder: str | Path, *, replace_all: bool = False) -> None:
    """Unpack :func:`pack_folder`'s archive into ``folder``.

    With ``replace_all`` the folder ends up holding exactly the archive's files (a file the task
    deleted, such as a stale ``error.txt``, is gone here too); the old folder is swapped out only once
    the new one is complete.
    """
    folder = Path(folder)
    if archive is None:
        folder.mkdir(parents=True, exist_ok=True)
        return
    target = folder
    if replace_all:
        target = folder.with_name(f".{folder.name}.incoming")
        shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(target, filter="data")  # "data": no absolute paths, links or devices escape the folder
    if replace_all:
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(target, folder)


def _remote_cell(task: CellTask, cell_fn: CellFunction | None, archive: bytes | None) -> tuple[CellOutcome, bytes | None]:
    """The Ray task: run the cell in a scratch folder on whichever node got it, send the folder back."""
    scratch = Path(tempfile.mkdtemp(prefix="catalyst-cell-"))
    try:
        unpack_folder(archive, scratch)
        outcome = run_cell(replace(task, run_dir=str(scratch)), cell_fn)
        return outcome, pack_folder(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError(f"the ray executor needs Ray; {_INSTALL_HINT}") from None
    return ray


class RayExecutor:
    """Runs cells as Ray tasks on the cluster at ``address`` (``None``: a Ray instance on this machine).

    If Ray is already initialised in this process (a notebook, a test) that instance is used and left
    running; otherwise the executor connects (or starts a local instance) and shuts down when done.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 connect_timeout: float = 3.0) -> None:
        if num_cpus < 0 or num_gpus < 0:
            raise ValueError(f"num_cpus and num_gpus must be >= 0, got {num_cpus!r}, {num_gpus!r}")
        self.address = address
        self.num_cpus = float(num_cpus)
        self.num_gpus = float(num_gpus)
        self.connect_timeout = float(connect_timeout)

    def check(self) -> None:
        """Fail fast, before any cell is prepared: Ray missing, or an address that does not answer."""
        _import_ray()
        if self.address is not None:
            check_ray_address(self.address, timeout=self.connect_timeout)

    def run(self, tasks: Sequence[CellTask], cell_fn: CellFunction | None = None) -> Iterator[CellOutcome]:
        if not tasks:
            return
        ray = _import_ray()
        started_here = False
        if not ray.is_initialized():
            self.check()
            try:
                ray.init(address=self.address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
            except ConnectionError as exc:
                raise RayAddressError(f"cannot connect to Ray at {self.address!r}: {exc}".splitlines()[0]) from None
            started_here = True
        try:
            remote = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)(_remote_cell)
            pending: dict[Any, CellTask] = {}
            for task in tasks:
                archive = pack_folder(task.run_dir)
                pending[remote.remote(replace(task, llm_url=None), cell_fn, archive)] = task
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                ref = ready[0]
                task = pending.pop(ref)
                try:
                    outcome, archive = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a lost node or worker fails only its own cell
                    yield CellOutcome(task.cell_id, "failed", error=f"ray task failed: {type(exc).__name__}: {exc}"[:500])
                    continue
                unpack_folder(archive, task.run_dir, replace_all=True)
                yield outcome
        finally:
            if started_here:
                ray.shutdown()
