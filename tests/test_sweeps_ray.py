"""The Ray executor: a small sweep through a local Ray instance gives the local executor's table, a
failing cell's traceback comes back into the sweep folder, and an address that does not answer is an
error within seconds."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from catalyst_nb.sweeps import (LocalExecutor, RayAddressError, RayExecutor, SweepConfig, check_ray_address,
                                run_sweep)
from catalyst_nb.sweeps.ray_executor import pack_folder, unpack_folder
from sweep_fakes import fake_execute

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    # workers import this checkout's package and the test's stand-in cell function
    paths = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    flag = Path(temp) / "fail"
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": paths, "SWEEP_FAKE_FAIL": str(flag)}})
    try:
        yield flag
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def _config():
    return SweepConfig.from_dict({
        "defaults": {"steps": 4, "llm": "none"},
        "grid": {"shots": [1, 4], "seed": [1, 2]},
        "methods": {"zero-shot": {"method": "zero-shot"}, "coop": {"method": "coop"}},
        "resources": {"num_cpus": 1},
    })


@pytest.mark.slow
def test_ray_sweep_matches_local_and_brings_failures_back(ray_instance, tmp_path, monkeypatch):
    flag = ray_instance
    flag.write_text("coop:1:2")
    monkeypatch.setenv("SWEEP_FAKE_FAIL", str(flag))
    local = run_sweep(_config(), tmp_path / "local", executor=LocalExecutor(), cell_fn=fake_execute, progress=False)
    remote = run_sweep(_config(), tmp_path / "ray", executor=RayExecutor(), cell_fn=fake_execute, progress=False)
    assert remote.table == local.table and "failed: seed 2" in remote.table
    assert (remote.ran, remote.failed, remote.shared) == (6, 1, 2)  # zero-shot's 4-shot cells share the 1-shot runs
    cells = tmp_path / "ray" / "cells"
    assert sorted(p.name for p in cells.iterdir()) == sorted(p.name for p in (tmp_path / "local" / "cells").iterdir())
    assert (cells / "coop__4shot__seed1" / "summary.json").is_file()
    assert "RuntimeError: injected failure" in (cells / "coop__1shot__seed2" / "error.txt").read_text()
    pids = {line for line in (cells / "coop__4shot__seed1" / "calls.jsonl").read_text().splitlines()}
    assert str(os.getpid()) not in "".join(pids)  # ran in a Ray worker

    # the failed cell travels with its state to a worker, resumes there, and its stale error is gone
    flag.unlink()
    again = run_sweep(_config(), tmp_path / "ray", executor=RayExecutor(), cell_fn=fake_execute, progress=False)
    assert (again.ran, again.skipped, again.shared, again.failed) == (1, 5, 2, 0)
    assert '"resume": true' in (cells / "coop__1shot__seed2" / "calls.jsonl").read_text()
    assert not (cells / "coop__1shot__seed2" / "error.txt").exists()


def test_address_that_does_not_answer_fails_in_seconds():
    from catalyst_nb.llm.launcher import free_port

    port = free_port()
    started = time.perf_counter()
    with pytest.raises(RayAddressError, match=f"no Ray cluster answers at '127.0.0.1:{port}'"):
        check_ray_address(f"127.0.0.1:{port}", timeout=2.0)
    with pytest.raises(RayAddressError, match="no Ray cluster"):
        RayExecutor(address=f"ray://127.0.0.1:{port}").check()
    assert time.perf_counter() - started < 10
    with pytest.raises(RayAddressError, match="not HOST:PORT"):
        check_ray_address("nonsense")


def test_folder_archive_round_trip(tmp_path):
    src = tmp_path / "a"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "x.txt").write_text("x")
    (src / "error.txt").write_text("old")
    archive = pack_folder(src)
    dst = tmp_path / "b"
    unpack_folder(archive, dst)
    assert (dst / "sub" / "x.txt").read_text() == "x"
    (src / "error.txt").unlink()
    unpack_folder(pack_folder(src), dst, replace_all=True)
    assert not (dst / "error.txt").exists() and (dst / "sub" / "x.txt").exists()
    assert pack_folder(tmp_path / "missing") is None


@pytest.mark.slow
def test_real_sweep_through_ray_equals_the_local_executor(ray_instance, tmp_path):
    """The run layer's own ``execute`` (embedded model and data, a few steps): same table both ways."""
    config = SweepConfig.from_dict({
        "sweep": {"name": "real"},
        "defaults": {"steps": 4, "n_ctx": 4, "llm": "none", "scoring_shots": 4},
        "grid": {"shots": [1], "seed": [1]},
        "methods": {"zero-shot": {"method": "zero-shot"}, "coop": {"method": "coop"}},
    })
    local = run_sweep(config, tmp_path / "local", executor=LocalExecutor(), progress=False)
    remote = run_sweep(config, tmp_path / "ray", executor=RayExecutor(), progress=False)
    assert (local.failed, remote.failed) == (0, 0), [r["error"] for r in local.rows + remote.rows]
    assert remote.table == local.table
    for row in remote.rows:
        assert 0.1 < row["test_accuracy"] <= 1  # above chance on the embedded data
        cell = tmp_path / "ray" / "cells" / row["cell_id"]
        assert {"config.json", "summary.json", "cell.json", "outcome.json"} <= {p.name for p in cell.iterdir()}
    coop = next(r for r in remote.rows if r["method"] == "coop")
    assert coop["test_accuracy"] == next(r for r in local.rows if r["method"] == "coop")["test_accuracy"]
