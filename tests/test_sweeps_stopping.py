"""Stopping a sweep with Ctrl-C or SIGTERM: at once, workers included, however the sweep was started."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

DRIVER = textwrap.dedent("""
    import sys
    from catalyst_nb.sweeps import LocalExecutor, SweepConfig, run_sweep
    from catalyst_nb.sweeps.stopping import stop_signals
    from sweep_fakes import slow_execute

    config = SweepConfig.from_dict({
        "sweep": {"name": "slow"}, "defaults": {"steps": 4, "llm": "none"},
        "grid": {"data": ["embedded"], "shots": [1], "seed": [1, 2, 3]},
        "methods": {"coop": {"method": "coop"}},
    })
    try:
        with stop_signals():
            run_sweep(config, sys.argv[1], executor=LocalExecutor(jobs=2), cell_fn=slow_execute, progress=False)
    except KeyboardInterrupt:
        sys.exit(130)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not yet reaped by its parent) is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_background_sweep_stops_at_once_with_its_workers(tmp_path, sig):
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    # as a shell starts a background job: SIGINT ignored from the start (inherited by the workers too)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 120
        started: list[Path] = []
        while len(started) < 2:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the two workers did not start their cells"
            time.sleep(0.2)
            started = sorted(out.glob("cells/*/started"))
        workers = {int(p.read_text()) for p in started}
        assert len(workers) == 2 and proc.pid not in workers
        stopped_at = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 130, proc.stdout.read().decode()[-3000:]
        assert time.monotonic() - stopped_at < 30  # not the 300 s the running cells would have taken
        for _ in range(50):
            if not any(_alive(pid) for pid in workers):
                break
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers), "a worker outlived its sweep"
        assert (out / "results.csv").is_file()  # the reports of the cells so far are written
        assert not list(out.glob("cells/*/summary.json"))  # nothing finished: a rerun resumes them
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
