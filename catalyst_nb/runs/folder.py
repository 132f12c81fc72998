"""A run is a folder: its config, an append-only events file, its state, its own LLM cassette, results.

::

    run_dir/
      config.json        the RunConfig and the fingerprint of the model and data it ran on
      events.jsonl       one JSON line per gradient step and per round event, appended as it happens
      state.pt           everything needed to continue (checksummed, written atomically after each unit)
      llm_cassette.json  every LLM call the run made, so a resumed run replays what it already paid for
      summary.json       written when the run finishes
      report.html        a self-contained report (plotly)

Resume is exact: the state records how many events it has seen; events written after the last state
save (a kill between the two writes) are dropped and produced again, identically, by the resumed run.

One writer at a time: :meth:`RunFolder.claim` takes the folder's lock (:mod:`catalyst_nb.runs.lock`) for the
whole run.  Before any model loads, a resume checks that the folder can be continued as it is: the state
is whole and was saved with the settings and fingerprint that ``config.json`` names, the events the state
has seen are all there, and the cassette holds every LLM call the events record.  Each check names the
file at fault.  A folder is never continued by starting its history over.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from catalyst_nb.runs.config import RunConfig
from catalyst_nb.runs.lock import FolderLock
from catalyst_nb.state_io import StateFileError, atomic_write_text, load_state, save_state

__all__ = ["RunFolder", "RunFolderError"]

_FILES = ("config.json", "events.jsonl", "state.pt", "llm_cassette.json", "summary.json", "report.html", "error.txt",
          "approvals")


class RunFolderError(ValueError):
    """A run folder cannot be used as asked (holds a run, holds none, holds another run, is damaged)."""


class RunFolder:
    """Reads and writes one run folder; knows nothing about models."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # what the state saves alongside the optimizer, so that a resume can tell an edited config.json
        self._config: dict[str, Any] | None = None
        self._fingerprint: dict[str, Any] | None = None
        self._lock: FolderLock | None = None
        self._made: list[Path] = []  # folders claim() created, removed again if the run never starts
        self._fresh = False  # create() made this folder's (empty) events file

    def __repr__(self) -> str:
        return f"RunFolder({os.fspath(self.path)!r})"

    # ---- paths ----------------------------------------------------------------------------------
    config_file = property(lambda self: self.path / "config.json")
    events_file = property(lambda self: self.path / "events.jsonl")
    state_file = property(lambda self: self.path / "state.pt")
    cassette_file = property(lambda self: self.path / "llm_cassette.json")
    summary_file = property(lambda self: self.path / "summary.json")
    report_file = property(lambda self: self.path / "report.html")

    def has_run(self) -> bool:
        return any((self.path / name).exists() for name in ("config.json", "state.pt", "summary.json"))

    def is_finished(self) -> bool:
        return self.summary_file.is_file()

    # ---- opening --------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], config: RunConfig, *, overwrite: bool = False) -> "RunFolder":
        """A fresh run folder; refuses one that holds a run unless ``overwrite`` (then only our files go)."""
        folder = cls(path)
        if folder.path.exists() and not folder.path.is_dir():
            raise RunFolderError(f"{os.fspath(folder.path)} is a file, not a folder")
        if folder.has_run():
            if not overwrite:
                raise RunFolderError(
                    f"{os.fspath(folder.path)} already holds a run; pass --overwrite to replace it or --resume to continue it"
                )
            for name in _FILES:
                target = folder.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        folder.path.mkdir(parents=True, exist_ok=True)
        folder.events_file.write_text("")
        folder._config, folder._fresh = config.to_dict(), True
        return folder

    @classmethod
    def for_resume(cls, path: str | os.PathLike[str], config: RunConfig) -> "RunFolder":
        """An existing run folder whose saved config equals ``config``; every difference is named."""
        folder = cls(path)
        if not folder.config_file.is_file():
            raise RunFolderError(f"{os.fspath(folder.path)} holds no run to resume (no config.json)")
        saved = folder.read_config()
        diffs = saved.differences(config)
        if diffs:
            shown = ", ".join(f"{k}: saved {a!r}, given {b!r}" for k, (a, b) in sorted(diffs.items()))
            raise RunFolderError(f"{os.fspath(folder.path)} was made with other settings ({shown}); "
                                 "resume with the same settings or start a new run")
        folder._config = config.to_dict()
        if not folder.is_finished():
            folder._check_resumable(config)
        return folder

    def _check_resumable(self, config: RunConfig) -> None:
        """Everything a resume needs, checked before any model loads (see the module docstring)."""
        if not self.state_file.exists():
            events = self.read_events()
            if events:  # starting over would append a second history to these events
                raise RunFolderError(
                    f"{os.fspath(self.state_file)} is missing but {os.fspath(self.events_file)} holds {len(events)} "
                    "events: the run cannot be continued without its state; start it over with --overwrite"
                )
            n_events = 0
        else:
            data = self._load_state_file()
            n_events = int(data["n_events"])
            self._check_state_matches_config(data)
            events = self.read_events(limit=n_events)
        if config.uses_llm:
            self._check_cassette(events)

    def _check_state_matches_config(self, data: Mapping[str, Any]) -> None:
        """The state saves the config and fingerprint it ran with; ``config.json`` must still say the same."""
        saved_config = data.get("config")
        if isinstance(saved_config, dict):
            try:
                diffs = RunConfig.from_dict(saved_config).differences(self.read_config())
            except ValueError as exc:
                raise RunFolderError(f"{os.fspath(self.state_file)} holds no readable run config: {exc}") from None
            if diffs:
                shown = ", ".join(f"{k}: state {a!r}, config.json {b!r}" for k, (a, b) in sorted(diffs.items()))
                raise RunFolderError(f"{os.fspath(self.config_file)} does not match the settings "
                                     f"{os.fspath(self.state_file)} was saved with ({shown}); was config.json edited?")
        saved_fp = data.get("fingerprint")
        if isinstance(saved_fp, dict):
            written_fp = self.read_fingerprint()
            diffs = sorted(k for k in set(saved_fp) | set(written_fp) if saved_fp.get(k) != written_fp.get(k))
            if diffs:
                raise RunFolderError(f"{os.fspath(self.config_file)}: the fingerprint differs from the one "
                                     f"{os.fspath(self.state_file)} was saved with (in {diffs}); was config.json edited?")

    def _check_cassette(self, events: list[dict[str, Any]]) -> None:
        """A resumed run replays the LLM calls it made from its cassette; without them it would ask again
        (paying twice and coming out different), so a missing or short cassette is refused.

        The events record the replies but not the full requests (sampling seeds and parameters), so a
        cassette cannot be rebuilt from them faithfully.
        """
        from catalyst_nb.llm.cassette import Cassette

        made = sum(int((e.get("data") or {}).get("n_calls", 0)) for e in events if e.get("type") == "round")
        if not self.cassette_file.exists():
            raise RunFolderError(
                f"{os.fspath(self.cassette_file)} is missing ({made} LLM calls recorded in the events): a resumed run "
                "would ask the LLM again what it already answered; restore the file or start over with --overwrite"
            )
        held = len(Cassette.load(self.cassette_file))
        if held < made:
            raise RunFolderError(
                f"{os.fspath(self.cassette_file)} holds {held} LLM calls but the events record {made}: the missing ones "
                "would be asked again; restore the file or start over with --overwrite"
            )

    @classmethod
    def claim(cls, path: str | os.PathLike[str], config: RunConfig, *, resume: bool = False,
              overwrite: bool = False) -> "RunFolder":
        """The folder, locked for this process and checked (:meth:`create` or :meth:`for_resume`), until
        :meth:`release`.

        A second writer is refused with :class:`~catalyst_nb.runs.lock.FolderBusyError` (naming the holder's
        pid).  A run released before it wrote its config (refused, or failed while loading the model) leaves
        nothing behind: what was made here is removed again.
        """
        if resume and overwrite:
            raise RunFolderError("resume and overwrite contradict each other: continue the run or replace it")
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"{os.fspath(path)} is a file, not a folder")
        made = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
        lock = FolderLock(path)
        folder: RunFolder | None = None
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock.acquire()
            folder = cls.for_resume(path, config) if resume else cls.create(path, config, overwrite=overwrite)
        except BaseException:
            placeholder = cls(path)
            placeholder._lock, placeholder._made = lock, made
            placeholder.release()
            raise
        folder._lock, folder._made = lock, made
        return folder

    def release(self) -> None:
        """Drop the lock :meth:`claim` took; a fresh folder whose run never started is removed again."""
        if self._fresh and not self.is_started():
            self.events_file.unlink(missing_ok=True)
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()
        if not self.is_started():
            for p in self._made:  # deepest first; a folder someone else put files into stays
                try:
                    p.rmdir()
                except OSError:
                    break
        self._made = []

    # ---- config and fingerprint -----------------------------------------------------------------
    def write_config(self, config: RunConfig, fingerprint: Mapping[str, Any]) -> None:
        """``config.json``, and for a run that calls an LLM its (empty) cassette: from here on a missing
        cassette means one deleted, which a resume refuses."""
        if config.uses_llm and not self.cassette_file.exists():
            from catalyst_nb.llm.cassette import Cassette

            Cassette().save(self.cassette_file)
        self._config, self._fingerprint = config.to_dict(), dict(fingerprint)
        atomic_write_text(self.config_file, json.dumps({"config": config.to_dict(), "fingerprint": dict(fingerprint)},
                                                       indent=2, sort_keys=True) + "\n")

    def is_started(self) -> bool:
        """Whether a run began here (its config is written): a folder that was not is cleaned up."""
        return self.config_file.exists()

    def _read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunFolderError(f"{os.fspath(path)} is missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{os.fspath(path)} is damaged: {exc}") from None

    def read_config(self) -> RunConfig:
        data = self._read_json(self.config_file)
        try:
            return RunConfig.from_dict(data["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RunFolderError(f"{os.fspath(self.config_file)} is not a run config: {exc}") from None

    def read_fingerprint(self) -> dict[str, Any]:
        return dict(self._read_json(self.config_file).get("fingerprint") or {})

    def check_fingerprint(self, fingerprint: Mapping[str, Any]) -> None:
        """Refuse to resume on another model or other data; name what differs."""
        saved = self.read_fingerprint()
        diffs = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
        if diffs:
            raise RunFolderError(
                f"{os.fspath(self.path)} was made with another model or other data (differs in {diffs}); "
                "start a new run instead of resuming"
            )
        self._fingerprint = dict(fingerprint)

    # ---- events ---------------------------------------------------------------------------------
    def append_event(self, event: Mapping[str, Any]) -> None:
        """Append one event line and make it durable before going on."""
        line = json.dumps(event, allow_nan=False, sort_keys=True) + "\n"
        with open(self.events_file, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def read_events(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The events, in order; a damaged line is an error naming the file and line (a partial last
        line, left by a kill during the write, is ignored when ``limit`` excludes it)."""
        out: list[dict[str, Any]] = []
        if not self.events_file.exists():
            return out
        with open(self.events_file, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if limit is not None and len(out) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise RunFolderError(f"{os.fspath(self.events_file)}:{lineno} is damaged: {exc}") from None
        if limit is not None and len(out) < limit:
            raise RunFolderError(f"{os.fspath(self.events_file)} has {len(out)} events, the state expects {limit}")
        return out

    def truncate_events(self, n: int) -> None:
        """Keep the first ``n`` events (those the saved state has seen)."""
        events = self.read_events(limit=n)
        atomic_write_text(self.events_file, "".join(json.dumps(e, allow_nan=False, sort_keys=True) + "\n" for e in events))

    # ---- state ----------------------------------------------------------------------------------
    def save_state(self, state: Mapping[str, Any], *, n_events: int) -> None:
        """The state, the number of events it has seen, and the config and fingerprint it belongs to."""
        save_state(self.state_file, {"n_events": int(n_events), "state": dict(state), "config": self._config,
                                     "fingerprint": self._fingerprint})

    def _load_state_file(self) -> dict[str, Any]:
        try:
            data = load_state(self.state_file)
        except StateFileError as exc:
            if not self.state_file.exists():
                raise RunFolderError(f"{os.fspath(self.path)} has no saved state to resume from") from None
            raise RunFolderError(str(exc)) from None
        if not isinstance(data, dict) or "state" not in data or not isinstance(data.get("n_events"), int):
            raise RunFolderError(f"{os.fspath(self.state_file)} is not a run state")
        return data

    def load_state(self) -> tuple[dict[str, Any], int]:
        data = self._load_state_file()
        return data["state"], int(data["n_events"])

    def restore(self, load_state_dict: Any, state: Mapping[str, Any]) -> None:
        """``load_state_dict(state)``; a state the optimizer refuses is an error naming ``state.pt``."""
        try:
            load_state_dict(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise RunFolderError(f"{os.fspath(self.state_file)} does not fit this run's settings "
                                 f"({type(exc).__name__}: {exc})") from None

    # ---- results --------------------------------------------------------------------------------
    def write_summary(self, summary: Mapping[str, Any]) -> None:
        atomic_write_text(self.summary_file, json.dumps(summary, indent=2, sort_keys=True, allow_nan=True) + "\n")

    def read_summary(self) -> dict[str, Any]:
        return self._read_json(self.summary_file)
