"""``catalyst-nb status RUN_DIR`` and ``catalyst-nb approve RUN_DIR [ID] [--text T] | --reject | --suggest T``.

The shell's way to answer a run that waits for approval (``catalyst-nb run --approval human``): ``status``
shows the round's scored proposals with what the context would hold for each, ``approve`` checks the
answer as the notebook would (an edit that would be cut is refused, naming the words lost) and writes it
into the run folder, where the waiting run picks it up within about a second.  Every refusal is an
``error: ...`` line with exit code 2 and writes nothing.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any, Callable, Mapping

__all__ = ["add_approval_parsers", "approve_command", "answer_hint", "proposals_table", "status_command"]

Echo = Callable[..., None]


def add_approval_parsers(sub: Any) -> None:
    s = sub.add_parser("status", help="a run folder's state: running, waiting for approval, finished, failed",
                       description=__doc__.splitlines()[0])
    s.add_argument("run_dir", help="the run folder (catalyst-nb run --out)")
    a = sub.add_parser("approve", help="answer a run that waits for approval (catalyst-nb run --approval human)",
                       description="Approve a proposal (the recommended one without ID), possibly edited, "
                                   "reject all, or suggest your own template.")
    a.add_argument("run_dir", help="the run folder that waits")
    a.add_argument("id", nargs="?", default=None,
                   help="the proposal: its id (r0-3) or rank (2 = second best); default: the recommendation")
    a.add_argument("--text", default=None, help="approve the proposal edited to this text")
    what = a.add_mutually_exclusive_group()
    what.add_argument("--reject", action="store_true", help="keep the current context (no restart this round)")
    what.add_argument("--suggest", default=None, metavar="T", help="restart from your own template T")
    a.add_argument("--round", type=int, default=None, dest="round_index",
                   help="the round you answer (refused if the run waits for another)")


def _fmt(value: Any, spec: str) -> str:
    return "–" if not isinstance(value, (int, float)) else format(value, spec)


def proposals_table(request: Mapping[str, Any]) -> list[str]:
    """The round's proposals, best first: rank, id, scores, the template and what the context would hold."""
    awaiting = request["awaiting"]["data"]  # the AwaitingApproval event's payload
    current = awaiting.get("current") or {}
    rows = [f"current context on the scoring split: loss {_fmt(current.get('loss'), '.4f')}, "
            f"accuracy {_fmt(current.get('accuracy'), '.3f')}",
            f"{'rank':>4}  {'id':<8} {'loss':>7} {'acc':>6}  {'template':<36} context would hold"]
    for rank, p in enumerate(awaiting["proposals"], start=1):
        mark = "  <- recommended" if p["id"] == awaiting.get("recommended") else ""
        rows.append(f"{rank:>4}  {p['id']:<8} {_fmt(p.get('loss'), '.4f'):>7} {_fmt(p.get('accuracy'), '.3f'):>6}  "
                    f"{p['template']:<36} {p.get('loaded') or ''}{mark}")
    if awaiting.get("recommended") is None:
        rows.append("the restart policy recommends keeping the current context")
    return rows


def answer_hint(run_dir: str | os.PathLike[str]) -> str:
    d = shlex.quote(os.fspath(run_dir))
    return f"catalyst-nb approve {d} [ID|RANK] [--text T] | --reject | --suggest T   (proposals: catalyst-nb status {d})"


def status_command(args: argparse.Namespace, echo: Echo) -> int:
    from catalyst_nb.runs.folder import RunFolderError
    from catalyst_nb.runs.status import run_status

    try:
        status = run_status(args.run_dir)
    except RunFolderError as exc:
        echo(f"error: {exc}", file=sys.stderr)
        return 2
    echo(status.line())
    if status.request is not None:
        for row in proposals_table(status.request):
            echo(row)
        echo(f"answer: {answer_hint(args.run_dir)}")
    return 0


def approve_command(args: argparse.Namespace, echo: Echo) -> int:
    from catalyst_nb.runs.approval_check import decide
    from catalyst_nb.runs.approval_inbox import ApprovalError, ApprovalInbox
    from catalyst_nb.runs.folder import RunFolder

    if not RunFolder(args.run_dir).has_run():
        echo(f"error: {args.run_dir} holds no run (no config.json)", file=sys.stderr)
        return 2
    if (args.reject or args.suggest is not None) and (args.id is not None or args.text is not None):
        echo("error: --reject and --suggest take no proposal ID and no --text", file=sys.stderr)
        return 2
    action = "reject" if args.reject else "suggest" if args.suggest is not None else "approve"
    try:
        decision = decide(args.run_dir, action=action, decider="cli", candidate=args.id,
                          text=args.suggest if action == "suggest" else args.text, round_index=args.round_index)
    except ApprovalError as exc:
        echo(f"error: {exc}", file=sys.stderr)
        return 2
    after = ("the waiting run takes it within about a second" if ApprovalInbox(args.run_dir).waiting_alive() else
             "the run is not running: continue it with `catalyst-nb run ... --resume` and it takes this decision")
    echo(f"round {decision.round}: {decision.describe()} — written; {after}")
    return 0
