"""How long a decision takes to reach a run that waits for approval in its folder.

A catalyst run with ``approval = "human"`` (the embedded model, a scripted LLM so that every round has
new proposals) waits at each of its rounds; each round is answered by a real ``catalyst-nb approve``
process (approve the best, approve the second edited, reject, suggest, in turn).  Printed per round:
the wall time of the ``approve`` command (start-up, checking the text with the run's tokenizer, writing)
and the time from the decision file being written to the run having applied it, appended the decision
event and saved its state (the run looks every ``POLL_S`` seconds).

    python benchmarks/approval_latency.py [--rounds 8] [--out runs/bench-approval]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from catalyst_nb.experiment import execute
from catalyst_nb.llm import ScriptedClient
from catalyst_nb.runs import RunConfig
from catalyst_nb.runs.approval_inbox import ApprovalInbox
from catalyst_nb.runs.approval_wait import POLL_S

ANSWERS = (["1"], ["2", "--text", "a neat {r} {{}}"], ["--reject"], ["--suggest", "a clear {r} {{}}"])
WORDS = ("grey", "folded", "small", "clean", "worn", "bright", "new", "old", "dark", "plain", "soft", "large", "thin",
         "cheap", "odd", "neat", "tidy", "loose", "wide", "short")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--out", default="runs/bench-approval")
    args = p.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    config = RunConfig(method="catalyst", steps=10 * (args.rounds + 1), rounds=args.rounds, shots=4,
                       approval="human", llm="local")
    replies = [f"a {w} {i} {{}}" for i in range(args.rounds) for w in WORDS[:8]]
    applied: dict[int, float] = {}

    def on_event(event: dict) -> None:
        if event.get("kind") == "decision":
            applied[event["round"]] = time.time()

    run = threading.Thread(target=execute, args=(config, out), daemon=True,
                           kwargs=dict(llm_client=ScriptedClient(replies, kind="completion"), progress=False,
                                       on_event=on_event))
    run.start()
    inbox = ApprovalInbox(out)
    rows = []
    for r in range(args.rounds):
        while not ((inbox.pending() or {}).get("awaiting", {}).get("round") == r and inbox.waiting_alive()):
            if not run.is_alive():
                print(f"the run ended before round {r} asked", file=sys.stderr)
                return 1
            time.sleep(0.05)
        answer = [a.format(r=r) for a in ANSWERS[r % len(ANSWERS)]]  # edits never repeat a known proposal
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "catalyst_nb", "approve", str(out), *answer, "--round", str(r)],
                              capture_output=True, text=True)
        command_s = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        while r not in applied:
            time.sleep(0.01)
        rows.append((r, " ".join(answer), command_s, applied[r] - inbox.decision(r).written))
    run.join()
    print(f"decision delivery to a waiting run (poll every {POLL_S} s), {args.rounds} rounds, embedded model")
    print(f"{'round':>5}  {'answer':<40} {'approve cmd s':>13} {'written->applied s':>18}")
    for r, answer, cmd, lat in rows:
        print(f"{r:>5}  {answer:<40} {cmd:>13.2f} {lat:>18.3f}")
    cmds, lats = [row[2] for row in rows], [row[3] for row in rows]
    print(f"median: approve command {statistics.median(cmds):.2f} s, written->applied {statistics.median(lats):.3f} s; "
          f"max {max(cmds):.2f} s / {max(lats):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
