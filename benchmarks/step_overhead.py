"""What a run pays per gradient step besides the step itself, before and after it was cut, side by side.

A run records every step: it reads the context as text (nearest vocabulary tokens, for the trajectory),
and its folder keeps a state to resume from.  Three costs grew with the steps: a full vocabulary search
for every projection, the whole trajectory converted to dicts again for every state, and the state written
(checksummed, synced to disk) after every step.  This runs the same CoOp run (the embedded model, 16 shots,
n_ctx 8, 250 steps, seed 1, one torch thread, into a run folder as the sweep runs it) in one process,
interleaved, ``--repeats`` times each:

  shipped      as shipped: projection tracked (NearestTracker), records converted once, the state
               written after every round and every 2 s of steps;
  search       the full vocabulary search at every step;
  every-step   the state written after every step, every record converted again each time (the old
               bookkeeping);
  before       both of the above (the run as it was).

and prints the median wall time of each and its ratio to ``before``, and checks that every variant wrote the
same events (seconds aside) as ``shipped``.

    python benchmarks/step_overhead.py [--repeats 3] [--steps 250]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

VARIANTS = ("shipped", "search", "every-step", "before")


class _SearchEveryTime:
    """Stands in for NearestTracker: the full search at every call."""

    def nearest(self, vectors, table, *, exclude_ids=()):
        from catalyst_nb.projection import nearest_tokens

        return nearest_tokens(vectors, table, metric="l2", k=1, exclude_ids=exclude_ids)


def _old_to_dicts(self):
    return [r.to_dict() for r in self._records]


@contextlib.contextmanager
def _variant(name: str) -> Iterator[None]:
    import catalyst_nb.experiment.experiment as experiment
    import catalyst_nb.prompt_learner as prompt_learner
    from catalyst_nb.trajectory import Trajectory

    saved = (prompt_learner.NearestTracker, experiment.STATE_EVERY_S, Trajectory.to_dicts)
    try:
        if name in ("search", "before"):
            prompt_learner.NearestTracker = _SearchEveryTime
        if name in ("every-step", "before"):
            experiment.STATE_EVERY_S = 0.0
            Trajectory.to_dicts = _old_to_dicts
        yield
    finally:
        prompt_learner.NearestTracker, experiment.STATE_EVERY_S, Trajectory.to_dicts = saved


def _events(folder: Path) -> list[dict]:
    out = []
    for line in (folder / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        event.pop("seconds", None)
        out.append(event)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=250)
    args = p.parse_args(argv)

    from catalyst_nb.threads import assign_process_threads

    assign_process_threads(1)
    from catalyst_nb.backbone import keep_loaded_models
    from catalyst_nb.experiment import execute
    from catalyst_nb.runs import RunConfig

    keep_loaded_models()
    config = RunConfig(method="coop", llm="none", shots=16, n_ctx=8, ctx_init="a photo of a", steps=args.steps, seed=1)
    root = Path(tempfile.mkdtemp(prefix="step-overhead-"))
    execute(config, root / "warm-up", progress=False)  # model, features and imports, outside the timings
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    reference = None
    for repeat in range(args.repeats):
        for name in VARIANTS:
            folder = root / f"{name}-{repeat}"
            with _variant(name):
                started = time.perf_counter()
                execute(config, folder, progress=False)
                times[name].append(time.perf_counter() - started)
            events = _events(folder)
            reference = events if reference is None else reference
            same = "same events" if events == reference else "EVENTS DIFFER"
            print(f"  repeat {repeat + 1} {name:10s} {times[name][-1]:6.2f} s  {same}", flush=True)
            if events != reference:
                return 1
    before = statistics.median(times["before"])
    print()
    print("| variant | median s | x before |")
    print("|---|---|---|")
    for name in VARIANTS:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.2f} | {median / before:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
