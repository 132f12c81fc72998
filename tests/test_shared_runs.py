"""The sweep lets the cells of a shot-blind method share one run; this checks, with real runs, that those
methods' results do not depend on ``shots`` (the reason the sharing is exact), and that a method that
does read the shots is not in the list."""
from __future__ import annotations

import pytest

from catalyst_nb.experiment import execute
from catalyst_nb.runs import RunConfig
from catalyst_nb.sweeps.shared_runs import SHOT_BLIND_METHODS

TINY = dict(model="tiny-native", pretrained=None, steps=6, rounds=2, n_ctx=4, batch_size=8, lr=0.5, scoring_shots=4,
            seed=3)
KEPT = ("test_accuracy", "scoring_accuracy", "template", "zero_shot_accuracy", "llm", "stages")


def _scripted():
    from catalyst_nb.llm import ScriptedClient

    return ScriptedClient([f"a {{}} seen from angle {i}" for i in range(16)], kind="completion")


def _run(tmp_path, method, shots):
    config = RunConfig(method=method, llm="none" if method in ("zero-shot", "coop") else "http://127.0.0.1:9/v1",
                       shots=shots, **TINY)
    summary = execute(config, tmp_path / f"{method}-{shots}", progress=False,
                      llm_client=None if config.llm == "none" else _scripted())
    return {k: summary.get(k) for k in KEPT}


@pytest.mark.parametrize("method", SHOT_BLIND_METHODS)
def test_shot_blind_methods_give_the_same_run_for_any_number_of_shots(tmp_path, method):
    one, four = _run(tmp_path, method, 1), _run(tmp_path, method, 4)
    assert one["test_accuracy"] is not None and one == four


def test_coop_reads_the_shots(tmp_path):
    assert "coop" not in SHOT_BLIND_METHODS
    one, four = _run(tmp_path, "coop", 1)["stages"], _run(tmp_path, "coop", 4)["stages"]
    assert one and [s["scoring_loss"] for s in one] != [s["scoring_loss"] for s in four]
