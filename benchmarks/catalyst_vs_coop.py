"""The catalyst (``default`` and ``paper`` presets) against CoOp alone, like with like, on the embedded world.

Same model, data, seeds, context length, initialisation and total gradient steps (probe steps count) for
every method; CoOp is evaluated at the same stage boundaries.  The LLM is the embedded Gemma 3 270M on
the local server (one server shared by all runs).  Prints per-stage accuracies (scoring split and test),
wall times, and for the catalyst how many proposals were valid, chosen, and helped: a restart *helped*
when the scoring accuracy at the end of the stage that followed it is higher than CoOp's at the same
step of the same seed.

    python benchmarks/catalyst_vs_coop.py [--seeds 1 2 3] [--shots 16] [--steps 250] [--out runs/bench]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from catalyst_nb.llm import LocalLLMServer
from catalyst_nb.experiment import execute
from catalyst_nb.runs import RunConfig

VARIANTS = {
    "coop": dict(method="coop", llm="none"),
    "catalyst default": dict(method="catalyst", preset="default"),
    "catalyst paper": dict(method="catalyst", preset="paper"),
    "catalyst probe": dict(method="catalyst", preset="default", restart="probe", probe_steps=10, probe_top=2),
    "projection restarts": dict(method="projection-restarts", llm="none"),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--n-ctx", type=int, default=8)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", default="runs/bench-catalyst")
    args = p.parse_args(argv)
    out = Path(args.out)
    results: dict[str, list[dict]] = {v: [] for v in args.variants}
    with LocalLLMServer(n_threads=1) as server:
        client = server.completion_client()
        for seed in args.seeds:
            for name in args.variants:
                cfg = RunConfig(shots=args.shots, seed=seed, steps=args.steps, n_ctx=args.n_ctx, **VARIANTS[name])
                folder = out / f"{name.replace(' ', '-')}-seed{seed}"
                started = time.perf_counter()
                summary = execute(cfg, folder, resume=folder.exists(), progress=False,
                                  llm_client=client if cfg.uses_llm else None)
                summary.setdefault("seconds", round(time.perf_counter() - started, 1))
                results[name].append(summary)
                print(f"{name:<20} seed {seed}: test {100 * summary['test_accuracy']:.2f} % "
                      f"({summary['seconds']} s)", flush=True)
    print()
    print(f"{'method':<20} {'test acc (mean ± std)':>22}  per seed                 wall s   stages: scoring / test")
    for name, runs in results.items():
        accs = [100 * r["test_accuracy"] for r in runs]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        stages = zip(*[[(s["scoring_accuracy"], s["test_accuracy"]) for s in r["stages"]] for r in runs])
        stage_txt = "  ".join(f"{100 * statistics.fmean(a for a, _ in st):.1f}/{100 * statistics.fmean(b for _, b in st):.1f}"
                              for st in stages)
        print(f"{name:<20} {statistics.fmean(accs):>13.2f} ± {std:4.2f}  "
              f"{' '.join(f'{a:.2f}' for a in accs):<24} {sum(r['seconds'] for r in runs):>6.0f}   {stage_txt}")
    if "coop" in results:
        coop = {r["seed"]: r for r in results["coop"]}
        for name, runs in results.items():
            if "llm" not in (runs[0] if runs else {}):
                continue
            valid = sum(r["llm"]["valid"] for r in runs)
            calls = sum(r["llm"]["calls"] for r in runs)
            chosen = sum(r["llm"]["chosen"] for r in runs)
            helped = total = 0
            for r in runs:
                by_step = {s["step"]: s for s in coop[r["seed"]]["stages"]}
                for restart in r["restarts"]:
                    after = next((s for s in r["stages"] if s["step"] > restart["step"]), None)
                    if after is None or after["step"] not in by_step:
                        continue
                    total += 1
                    helped += after["scoring_accuracy"] > by_step[after["step"]]["scoring_accuracy"]
            print(f"{name}: {valid} valid new templates in {calls} LLM calls "
                  f"({valid / max(len(runs), 1) / max(runs[0]['llm']['rounds'], 1):.1f} per round), "
                  f"{chosen} chosen, {helped}/{total} restarts ahead of CoOp at the next stage end")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
