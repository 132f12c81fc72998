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
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from catalyst_nb.runs.config import RunConfig
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
        return folder

    # ---- config and fingerprint -----------------------------------------------------------------
    def write_config(self, config: RunConfig, fingerprint: Mapping[str, Any]) -> None:
        atomic_write_text(self.config_file, json.dumps({"config": config.to_dict(), "fingerprint": dict(fingerprint)},
                                                       indent=2, sort_keys=True) + "\n")

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
        save_state(self.state_file, {"n_events": int(n_events), "state": dict(state)})

    def load_state(self) -> tuple[dict[str, Any], int]:
        try:
            data = load_state(self.state_file)
        except StateFileError as exc:
            if not self.state_file.exists():
                raise RunFolderError(f"{os.fspath(self.path)} has no saved state to resume from") from None
            raise RunFolderError(str(exc)) from None
        if not isinstance(data, dict) or "state" not in data or "n_events" not in data:
            raise RunFolderError(f"{os.fspath(self.state_file)} is not a run state")
        return data["state"], int(data["n_events"])

    # ---- results --------------------------------------------------------------------------------
    def write_summary(self, summary: Mapping[str, Any]) -> None:
        atomic_write_text(self.summary_file, json.dumps(summary, indent=2, sort_keys=True, allow_nan=True) + "\n")

    def read_summary(self) -> dict[str, Any]:
        return self._read_json(self.summary_file)
