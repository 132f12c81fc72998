"""Checking a decision before it is written, in the decider's process, exactly as the notebook does.

In the notebook an edit that would be cut to fit the context is refused by the optimizer itself; a
decider in another process has no optimizer, and a decision once written is final (first wins).  So the
decider checks first, with what the run published in its request: the model name and the learner's
context layout.  That needs only the run's *tokenizer* (:func:`~catalyst_nb.backbone.load_tokenizer`,
no weights): :func:`~catalyst_nb.prompt_learner.fit_template` then gives the very report the run's
learner would give.
"""
from __future__ import annotations

import functools
from typing import Any, Mapping

from catalyst_nb.runs.approval_inbox import ApprovalError, Decision

__all__ = ["TemplateFit", "check_decision", "decide", "fit_spec", "proposal_id", "tokenizer_of"]


def fit_spec(learner: Any) -> dict[str, Any]:
    """Run side: what a decider needs to fit a text the way ``learner`` would."""
    return {"model": learner.clip.name, "n_ctx": int(learner.n_ctx),
            "class_token_position": learner.class_token_position, "filler": learner.filler}


@functools.lru_cache(maxsize=4)
def tokenizer_of(model: str) -> Any:
    """The tokenizer of ``model`` (loaded once per process: a notebook previews on every keystroke)."""
    from catalyst_nb.backbone import load_tokenizer

    return load_tokenizer(model)


class TemplateFit:
    """What the run's context would hold for a text, computed from its tokenizer alone."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = dict(spec)
        self.tokenizer = tokenizer_of(str(spec["model"]))
        filler_ids = self.tokenizer.encode(str(spec["filler"]))
        if len(filler_ids) != 1:
            raise ValueError(f"filler {spec['filler']!r} is not a single token of {spec['model']}")
        self._filler_id = filler_ids[0]

    def preview(self, text: str) -> Any:
        """The :class:`~catalyst_nb.prompt_learner.LoadReport` for ``text`` (padding, cuts, ignored words)."""
        from catalyst_nb.prompt_learner import fit_template
        from catalyst_nb.templates import check_template

        return fit_template(self.tokenizer, check_template(text), n_ctx=int(self.spec["n_ctx"]),
                            class_token_position=str(self.spec["class_token_position"]), filler_id=self._filler_id)[1]

    def check(self, text: str) -> str:
        """``text`` as the run will read it; :class:`ApprovalError` when it cannot be loaded whole."""
        from catalyst_nb.templates import check_template

        try:
            text = check_template(text)
            report = self.preview(text)
        except ValueError as exc:
            raise ApprovalError(str(exc)) from None
        if report.dropped:
            raise ApprovalError(
                f"{text!r} is longer than the context (n_ctx={self.spec['n_ctx']}): the words "
                f"{_words(report.dropped)!r} would be cut; shorten it"
            )
        return text


def _words(tokens: tuple[str, ...]) -> str:
    """Vocabulary pieces back to the words a person typed (BPE ``</w>`` ends, word-piece ``##`` joins)."""
    if any(t.endswith("</w>") for t in tokens):
        return "".join(tokens).replace("</w>", " ").strip()
    return "".join(t[2:] if t.startswith("##") else f" {t}" for t in tokens).strip()


def proposal_id(record: Mapping[str, Any], given: str | None) -> str:
    """The proposal a decider means: an id (``r0-3``), a rank (``2`` or ``#2``, 1 = best scored), or
    nothing for the policy's recommendation."""
    proposals = record["awaiting"]["data"]["proposals"]  # the AwaitingApproval event's to_dict() form
    ids = [p["id"] for p in proposals]
    if given is None:
        recommended = record["awaiting"]["data"]["recommended"]
        if recommended is None:
            raise ApprovalError("the restart policy recommends keeping the current context: name a proposal "
                                f"(one of {ids}, or its rank 1..{len(ids)}) or use --reject")
        return str(recommended)
    rank = given.lstrip("#")
    if rank.isdigit() and given not in ids:
        if not 1 <= int(rank) <= len(ids):
            raise ApprovalError(f"rank {given!r}: round {record['awaiting']['round']} has {len(ids)} proposals")
        return ids[int(rank) - 1]
    if given not in ids:
        raise ApprovalError(f"no proposal {given!r} in round {record['awaiting']['round']}; choose one of {ids} "
                            f"or a rank 1..{len(ids)}")
    return given


def check_decision(record: Mapping[str, Any], *, action: str, decider: str, candidate: str | None = None,
                   text: str | None = None, fit: TemplateFit | None = None) -> Decision:
    """The :class:`Decision` a decider may write for the request ``record``, or :class:`ApprovalError`.

    An approved proposal whose text was not changed is approved as it is; an edit or a suggestion is
    checked against the run's context (``fit``: built from the request when not given).
    """
    if action not in ("approve", "reject", "suggest"):
        raise ApprovalError(f"action={action!r} is not approve, reject or suggest")
    awaiting = record["awaiting"]
    cid = proposal_id(record, candidate) if action == "approve" else None
    if action == "reject":
        text = None
    elif text is not None:
        if action == "approve":
            template = next(p["template"] for p in awaiting["data"]["proposals"] if p["id"] == cid)
            if " ".join(text.split()) == template:
                text = None
        if text is not None:
            text = (fit or TemplateFit(record["fit"])).check(text)
            _check_new(record, text)
    elif action == "suggest":
        raise ApprovalError("--suggest needs a text, e.g. --suggest 'a photo of a {}.'")
    return Decision(run_id=str(record["run_id"]), round=int(awaiting["round"]), action=action, decider=decider,
                    candidate_id=cid, text=text)


def _check_new(record: Mapping[str, Any], text: str) -> None:
    """Refuse a text that repeats a known proposal, as the optimizer would when it applies it."""
    from catalyst_nb.templates import normalize_template

    key = normalize_template(text)
    for pid, template in (record.get("known") or {}).items():
        if normalize_template(template) == key:
            raise ApprovalError(f"{text!r} is the same as proposal {pid!r} ({template!r}) and proposals are "
                                "not repeated; write another text")


def decide(run_dir: Any, *, action: str, decider: str, candidate: str | None = None, text: str | None = None,
           round_index: int | None = None, run_id: str | None = None, fit: TemplateFit | None = None) -> Decision:
    """Check and write one decision into ``run_dir``'s inbox; returns it as written.

    ``round_index`` and ``run_id``, when given, are what the decider saw: a decision for another round
    (one decided already, or not asked yet) or for another run (the folder was started over since) is
    refused.  A round decided by someone else is refused with :class:`DecisionTaken` naming that decision.
    """
    from catalyst_nb.runs.approval_inbox import ApprovalInbox, DecisionTaken

    inbox = ApprovalInbox(run_dir)
    record = inbox.latest()
    if record is None:
        raise ApprovalError(f"{run_dir} has asked for no decision (is it a run with approval 'human', and has "
                            "it reached its first restart?)")
    if run_id is not None and run_id != record["run_id"]:
        raise ApprovalError(f"this decision is for run {run_id}, but {run_dir} now holds run {record['run_id']} "
                            "(it was started over); look at its proposals again")
    asked = int(record["awaiting"]["round"])
    if round_index is not None and round_index != asked:
        earlier = inbox.request(round_index) if round_index < asked else None
        taken = inbox.decision(round_index) if earlier is not None else None
        if taken is not None:
            raise DecisionTaken(taken)
        raise ApprovalError(f"round {round_index} is not waiting for a decision: the run's latest question is "
                            f"round {asked}")
    taken = inbox.decision(asked)
    if taken is not None:
        raise DecisionTaken(taken)
    decision = check_decision(record, action=action, decider=decider, candidate=candidate, text=text, fit=fit)
    return inbox.write_decision(decision)
