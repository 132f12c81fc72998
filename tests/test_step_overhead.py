"""benchmarks/step_overhead.py runs the old and the new per-step bookkeeping side by side; here, on a short
run, every variant must write the same events (the script exits 1 otherwise) and print its table.
The timings are the benchmark's own output, never asserted."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_old_and_new_bookkeeping_write_the_same_events(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", CATALYST_NB_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT),
               TMPDIR=str(tmp_path))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_overhead.py"), "--steps", "40",
                           "--repeats", "1"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count("same events") == 4
    for variant in ("shipped", "search", "every-step", "before"):
        assert f"| {variant} | " in done.stdout
