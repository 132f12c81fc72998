"""State files: atomic writes that leave no debris, and loads that verify and name the file on every failure."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from catalyst_nb.state_io import StateFileError, atomic_write_bytes, atomic_write_text, load_state, save_state


def _state() -> dict:
    return {"version": 1, "ctx": torch.randn(4, 8, generator=torch.Generator().manual_seed(0)),
            "generator": torch.Generator().manual_seed(3).get_state(), "config": {"lr": 0.002, "name": "x"},
            "trajectory": [{"step": 0, "loss": 1.5, "text": None}]}


def test_round_trip_is_exact(tmp_path):
    state = _state()
    save_state(tmp_path / "state.pt", state)
    back = load_state(tmp_path / "state.pt")
    assert torch.equal(back["ctx"], state["ctx"]) and torch.equal(back["generator"], state["generator"])
    assert back["config"] == state["config"] and back["trajectory"] == state["trajectory"]
    assert os.listdir(tmp_path) == ["state.pt"]  # no temporary file left beside it


def test_written_file_has_the_usual_permissions(tmp_path):
    save_state(tmp_path / "state.pt", _state())
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "state.pt").stat().st_mode & 0o777 == 0o666 & ~mask


def test_atomic_write_replaces_and_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")

    import catalyst_nb.state_io as state_io

    real_fdopen = os.fdopen

    def failing_fdopen(fd, mode):  # a write that fails halfway, as on a full disk
        fh = real_fdopen(fd, mode)
        original = fh.write

        def write(data):
            original(data[:3])
            raise OSError(28, "No space left on device")

        fh.write = write
        return fh

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state_io.os, "fdopen", failing_fdopen)
        with pytest.raises(OSError, match="No space"):
            atomic_write_bytes(target, b"new contents")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["summary.json"]
    atomic_write_bytes(target, b"new")
    assert target.read_text() == "new"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(StateFileError, match=r"state file .*nothere\.pt: no such file") as info:
        load_state(tmp_path / "nothere.pt")
    assert info.value.path == tmp_path / "nothere.pt"
    assert isinstance(info.value, ValueError)


def test_folder_in_place_of_file_is_named(tmp_path):
    with pytest.raises(StateFileError, match="is a folder"):
        load_state(tmp_path)


@pytest.mark.parametrize("keep", [0, 10, 60, 200, -1])
def test_truncated_file_is_refused(tmp_path, keep):
    path = tmp_path / "state.pt"
    save_state(path, _state())
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(StateFileError, match=r"state\.pt: (truncated|damaged header|not a catalyst_nb state)"):
        load_state(path)


def test_flipped_bytes_are_refused(tmp_path):
    path = tmp_path / "state.pt"
    save_state(path, _state())
    data = bytearray(path.read_bytes())
    for offset in (len(data) // 2, len(data) - 40):
        data[offset] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(StateFileError, match="checksum mismatch"):
        load_state(path)


def test_plain_torch_file_is_not_a_state(tmp_path):
    path = tmp_path / "state.pt"
    torch.save(_state(), path)
    with pytest.raises(StateFileError, match="not a catalyst_nb state file"):
        load_state(path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickled_code_is_refused_even_with_a_valid_checksum(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    save_state(path, {"version": 1, "payload": _RunsCode()})
    calls = []
    monkeypatch.setattr(os, "system", lambda cmd: calls.append(cmd) or 0)
    with pytest.raises(StateFileError, match="refused"):
        load_state(path)
    assert calls == []
    with pytest.raises(StateFileError, match=r"state\.pt"):  # a plain pickle is not a state file either
        path.write_bytes(pickle.dumps({"version": 1}))
        load_state(path)
