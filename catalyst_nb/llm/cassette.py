"""Record and replay LLM traffic, keyed by a stable hash of the whole request.

Why: tests and notebooks must run offline and give the same proposals every time, and a run must be
reproducible after the fact. A :class:`RecordingClient` wraps a real client and stores every
(request, response) pair; a :class:`ReplayingClient` answers from the stored pairs and fails with a
:class:`ReplayMiss` naming the request when the request was never recorded (for example because a
meta-prompt or a sampling parameter changed). Identical requests made several times are replayed in
the order they were recorded. Cassettes hold requests and responses only: no URL, no key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from catalyst_nb.state_io import atomic_write_text

from .client import LLMClient, LLMRequest, LLMResponse, check_kind, check_request_kind, request_key
from .errors import ReplayMiss

__all__ = ["Cassette", "CassetteEntry", "CassetteFileError", "RecordingClient", "ReplayingClient", "ResumingClient"]

_FORMAT = "catalyst_nb.llm.cassette"
_VERSION = 1


class CassetteFileError(ValueError):
    """A cassette file cannot be read: not JSON, not a cassette, or edited; the message names the file."""


@dataclass(frozen=True)
class CassetteEntry:
    """One recorded call: the request, its key, and the response the server gave."""

    key: str
    request: LLMRequest
    response: LLMResponse


class Cassette:
    """An ordered list of recorded calls with lookup by request key."""

    def __init__(self, entries: Iterator[CassetteEntry] | list[CassetteEntry] | tuple[CassetteEntry, ...] = ()) -> None:
        self._entries: list[CassetteEntry] = []
        for entry in entries:
            self.add(entry.request, entry.response)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[CassetteEntry]:
        return iter(self._entries)

    def __repr__(self) -> str:
        return f"Cassette({len(self._entries)} entries)"

    @property
    def entries(self) -> tuple[CassetteEntry, ...]:
        return tuple(self._entries)

    def add(self, request: LLMRequest, response: LLMResponse) -> CassetteEntry:
        entry = CassetteEntry(key=request_key(request), request=request, response=response)
        self._entries.append(entry)
        return entry

    def responses_for(self, key: str) -> list[LLMResponse]:
        return [e.response for e in self._entries if e.key == key]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "entries": [
                {"key": e.key, "request": e.request.to_dict(), "response": e.response.to_dict()}
                for e in self._entries
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cassette:
        if data.get("format") != _FORMAT or data.get("version") != _VERSION:
            raise ValueError(
                f"not a cassette of format {_FORMAT!r} version {_VERSION}: "
                f"format={data.get('format')!r}, version={data.get('version')!r}"
            )
        cassette = cls()
        for i, raw in enumerate(data.get("entries", [])):
            request = LLMRequest.from_dict(raw["request"])
            entry = cassette.add(request, LLMResponse.from_dict(raw["response"]))
            if raw.get("key") != entry.key:
                raise ValueError(
                    f"cassette entry {i} has key {raw.get('key')!r} but its request hashes to {entry.key!r}; "
                    "the file was edited or written by an incompatible version"
                )
        return cassette

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically as indented, key-sorted JSON (stable diffs in version control)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        atomic_write_text(target, text)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Cassette:
        """Read a saved cassette; any damage is a :class:`CassetteFileError` naming the file."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if not isinstance(data, dict):
                raise ValueError(f"holds a JSON {type(data).__name__}, not a cassette")
            return cls.from_dict(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CassetteFileError(f"cassette {os.fspath(path)} is not JSON ({exc})") from None
        except IsADirectoryError:
            raise CassetteFileError(f"cassette {os.fspath(path)} is a folder, not a file") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise CassetteFileError(f"cassette {os.fspath(path)} is damaged: {type(exc).__name__}: {exc}") from None


class RecordingClient:
    """Passes calls to ``inner`` and records each successful (request, response) pair.

    With ``path`` the cassette is saved after every call, so an interrupted run keeps what it paid
    for. Failed calls are not recorded (their error propagates unchanged).
    """

    def __init__(self, inner: LLMClient, cassette: Cassette | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.model = inner.model
        self.cassette = cassette if cassette is not None else Cassette()
        self.path = None if path is None else Path(path)

    def __repr__(self) -> str:
        return f"RecordingClient({self.inner!r}, {self.cassette!r}, path={self.path!r})"

    def complete(self, request: LLMRequest) -> LLMResponse:
        response = self.inner.complete(request)
        self.cassette.add(request, response)
        if self.path is not None:
            self.cassette.save(self.path)
        return response


class ReplayingClient:
    """Answers from a cassette; a request that was not recorded raises :class:`ReplayMiss`.

    ``kind`` and ``model`` default to those of the recorded requests (they must agree).
    """

    def __init__(self, cassette: Cassette | str | os.PathLike[str], *, kind: str | None = None, model: str | None = None) -> None:
        if not isinstance(cassette, Cassette):
            cassette = Cassette.load(cassette)
        self.cassette = cassette
        kinds = {e.request.kind for e in cassette}
        models = {e.request.model for e in cassette}
        if kind is None:
            if len(kinds) != 1:
                raise ValueError(f"cannot infer the client kind from a cassette with kinds {sorted(kinds)}; pass kind=")
            kind = kinds.pop()
        if model is None:
            if len(models) != 1:
                raise ValueError(f"cannot infer the model from a cassette with models {sorted(models)}; pass model=")
            model = models.pop()
        self.kind = check_kind(kind)
        self.model = model
        self._used: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"ReplayingClient(kind={self.kind!r}, model={self.model!r}, {self.cassette!r})"

    def complete(self, request: LLMRequest) -> LLMResponse:
        check_request_kind(self.kind, request)
        key = request_key(request)
        recorded = self.cassette.responses_for(key)
        used = self._used.get(key, 0)
        if used >= len(recorded):
            if recorded:
                why = f"it was recorded {len(recorded)} time(s) and all were replayed"
            else:
                why = f"the cassette ({len(self.cassette)} entries) has no such request"
            raise ReplayMiss(f"replay miss for {request.describe()} (key {key[:16]}): {why}", request_key=key)
        self._used[key] = used + 1
        return recorded[used]


class ResumingClient:
    """Replays what a run already paid for, then records new calls: the LLM client of a resumable run.

    A run killed between an LLM reply and what it did with it asks the same question again on resume;
    answering from the run's own cassette (in the order recorded, per request) makes the resumed run
    continue exactly as the uninterrupted one would have, and the live model is called only for
    requests the cassette does not hold yet.  Each new reply is saved (atomically) before it is used.
    """

    def __init__(self, inner: LLMClient, path: str | os.PathLike[str]) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.model = inner.model
        self.path = Path(path)
        self.cassette = Cassette.load(self.path) if self.path.is_file() else Cassette()
        self._used: dict[str, int] = {}
        self.replayed = 0

    def __repr__(self) -> str:
        return f"ResumingClient({self.inner!r}, {len(self.cassette)} recorded, replayed={self.replayed})"

    def complete(self, request: LLMRequest) -> LLMResponse:
        key = request_key(request)
        recorded = self.cassette.responses_for(key)
        used = self._used.get(key, 0)
        self._used[key] = used + 1
        if used < len(recorded):
            self.replayed += 1
            return recorded[used]
        response = self.inner.complete(request)
        self.cassette.add(request, response)
        self.cassette.save(self.path)
        return response
