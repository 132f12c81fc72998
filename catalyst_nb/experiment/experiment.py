"""The one object a run is: :class:`Experiment`, built from one :class:`~catalyst_nb.runs.RunConfig`.

A notebook, ``catalyst-nb run`` and every sweep cell build their runs through it and nothing else, so the
same config gives the same run everywhere (a test compares the events a notebook-style run and the
command line write).  It loads the model and data, extracts and caches features, builds the learner, the
LLM client (the local server starts on the first LLM call and stops on :meth:`Experiment.close`) and the
optimizer, and drives it one unit at a time.  With a ``folder`` every unit is written as it happens in the
run-folder format of :mod:`catalyst_nb.runs.folder` (config, events as they happen, the state after every
round and every few seconds of steps, the LLM cassette, then summary and report), so a killed run
resumes exactly.

::

    with Experiment.from_toml("run.toml", shots=4) as exp:   # or Experiment(method="coop", steps=100)
        exp.run()                                            # to the end, or until a restart awaits approval
        accuracy, summary = exp.evaluate("test").accuracy, exp.summary()
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Mapping

from catalyst_nb.runs.config import RunConfig, load_toml
from catalyst_nb.runs.folder import RunFolder
from catalyst_nb.runs.preflight import check_run_inputs

__all__ = ["Experiment"]

log = logging.getLogger(__name__)

EventCallback = Callable[[dict[str, Any]], None]
_GRADIENT_METHODS = ("coop", "catalyst", "projection-restarts", "random-edits")
_START = "a photo of a {}."
# Seconds of gradient steps between two writes of a run folder's state (see Experiment.save_state).
STATE_EVERY_S = 2.0


def _event_of(unit: Any) -> dict[str, Any]:
    """A unit an optimizer returned, as the JSON line the events file holds (read through ``to_dict()``):
    a step record, or a round event of any kind (``awaiting`` included)."""
    from catalyst_nb.json_codec import json_data
    from catalyst_nb.trajectory import StepRecord

    if isinstance(unit, StepRecord):
        return {"type": "step", **json_data(unit.to_dict())}
    return {"type": "round", **unit.to_dict()}


class Experiment:
    """One run of one method: built from a config, driven by :meth:`step` / :meth:`run`, read back by
    :meth:`evaluate`, :meth:`summary`, :attr:`events` and :meth:`dashboard`.

    Args:
        config: a :class:`RunConfig`, or its dict (nested tables or flat keys); ``None``: the defaults.
        folder: a run folder to write as the run goes (``None``: nothing is written).
        resume: continue the run in ``folder`` (its saved config must equal ``config``).
        overwrite: replace a run ``folder`` already holds.
        llm_client: a client to use instead of the one the config names (a sweep's shared server, a
            :class:`~catalyst_nb.llm.ScriptedClient` or a cassette in tests and notebooks).
        approval: ``auto`` (the restart policy decides) or ``human`` (:meth:`run` returns when a restart
            awaits a decision; decide on :attr:`optimizer`, e.g. with the approval panel, then run again);
            ``None``: the config's ``[catalyst] approval``.  A value given here is written into the config.
        approval_inbox: take the decisions from the run folder instead (``catalyst-nb approve``, a notebook
            attached with :func:`catalyst_nb.runs.attach`): :meth:`run` waits for each one, as headless
            runs do; needs ``folder`` (see :mod:`catalyst_nb.runs.approval_inbox`).
        progress: progress bars while features are extracted.
        on_event: called with every event (the JSON line) as it is recorded.
        **settings: settings on top of ``config``, flat or nested (``lr=0.01``, ``catalyst={"rounds": 2}``).
    """

    def __init__(self, config: RunConfig | Mapping[str, Any] | None = None, *,
                 folder: str | os.PathLike[str] | None = None, resume: bool = False, overwrite: bool = False,
                 llm_client: Any = None, approval: str | None = None, approval_inbox: bool = False,
                 progress: bool = True, on_event: EventCallback | None = None, **settings: Any) -> None:
        if approval not in (None, "auto", "human"):
            raise ValueError(f"approval={approval!r} is not 'auto' or 'human'")
        config = config if isinstance(config, RunConfig) else RunConfig.from_dict(config or {})
        if approval is not None:
            settings = {**settings, "approval": approval}
        if settings:
            config = config.replace(**settings)
        if resume and folder is None:
            raise ValueError("resume=True needs the folder of the run to continue")
        if approval_inbox and folder is None:
            raise ValueError("approval_inbox=True needs the folder whose inbox the decisions arrive in")
        self.config: RunConfig = config
        self.approval = config.catalyst.approval
        self._waiter: Any = None
        self.on_event = on_event
        self._started = time.perf_counter()
        self._saved_at = self._started
        self._unsaved = False
        self._in_unit = False  # inside a unit of work: the optimizer may hold half of a step
        self._summary: dict[str, Any] | None = None
        self._own_client: Any = None
        self._hand_written: tuple[str, Any] | None = None
        # the inputs and the folder are checked before any model loads: a typo in the model or the device, a
        # used or busy folder, a resume of another run or of a damaged folder are refused; the folder stays
        # locked for this process until the run is done or close()
        self.folder: RunFolder | None = None
        check_run_inputs(config)
        if folder is not None:
            self.folder = RunFolder.claim(folder, config, resume=resume, overwrite=overwrite)
        try:
            self._build(llm_client, resume=resume, progress=progress, approval_inbox=approval_inbox)
        except BaseException:
            self.close()
            raise

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **options: Any) -> "Experiment":
        """From a TOML file; keyword ``options`` are either this class's arguments (``folder=``, ...)
        or settings that override the file's (``shots=4``, ``gradient={"lr": 0.01}``)."""
        return cls.from_dict(load_toml(path), **options)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **options: Any) -> "Experiment":
        """From a config's dict; ``options`` as for :meth:`from_toml`."""
        return cls(RunConfig.from_dict(data), **options)

    def _build(self, llm_client: Any, *, resume: bool, progress: bool, approval_inbox: bool = False) -> None:
        from catalyst_nb.experiment.build import build_context, build_optimizer, fingerprint, open_llm_client
        from catalyst_nb.threads import configure_torch_threads

        config = self.config
        # the CPUs other work leaves free (CATALYST_NB_THREADS or a worker's share overrides), counted before
        # the run's own LLM server starts loading: it lends its cores (computes only while the run waits)
        configure_torch_threads()
        client = llm_client
        if config.uses_llm and client is None:  # started first: it loads while the model and features load
            client = self._own_client = open_llm_client(config)
        self.context = ctx = build_context(config, progress=progress)
        if self.folder is not None:
            if resume:
                self.folder.check_fingerprint(fingerprint(ctx))
            else:
                self.folder.write_config(config, fingerprint(ctx))
        if client is not None and self.folder is not None and config.uses_llm:
            from catalyst_nb.llm.cassette import ResumingClient

            client = ResumingClient(client, self.folder.cassette_file)  # a resumed run replays what it paid for
        self.client = client if config.uses_llm else None
        self.optimizer = build_optimizer(config, ctx, self.client, approval=self.approval)
        if self.folder is not None and approval_inbox:
            from catalyst_nb.runs.approval_wait import approval_waiter

            self._waiter = approval_waiter(self.folder.path, approval=self.approval,
                                           timeout=config.catalyst.approval_timeout, fresh=not resume)
        self._start(resume=resume)

    def _start(self, *, resume: bool) -> None:
        """Where the first unit begins: the saved state of a resumed run, or the method's own start."""
        config, ctx = self.config, self.context
        self.events: list[dict[str, Any]] = []
        if resume and self.folder is not None and self.folder.state_file.exists():
            state, n_events = self.folder.load_state()
            self.folder.restore(self.optimizer.load_state_dict, state[self._state_key])
            self.folder.truncate_events(n_events)
            self.events = list(self.folder.read_events())
            if self.folder.is_finished():  # a finished run read back: its summary is the one it wrote
                self._summary = self.folder.read_summary()
        elif config.method == "llm-only":
            from catalyst_nb.evaluation import evaluate_templates

            start = f"{config.gradient.ctx_init} {{}}." if config.gradient.ctx_init else _START
            first = evaluate_templates(ctx.clip, start, ctx.scoring)
            self.optimizer.tell({self.optimizer.add_template(start, note="initial template").id: (first.loss, first.accuracy)})
        # the optimizer's round events recorded so far (a resumed optimizer holds those of the run it continues)
        self._seen = len(getattr(self.optimizer, "events", None) or ()) if config.method in _GRADIENT_METHODS else 0

    # ---- state -----------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Whether the run has nothing left to do (zero-shot never has anything)."""
        if self.optimizer is None:
            return True
        if self.config.method == "llm-only":
            return len(self.events) >= self.config.catalyst.rounds
        return self.optimizer.done

    @property
    def awaiting(self) -> Any:
        """The :class:`~catalyst_nb.optim.AwaitingApproval` a restart waits on, or ``None``."""
        return getattr(self.optimizer, "awaiting", None) if self.config.method in _GRADIENT_METHODS else None

    @property
    def status(self) -> str:
        if self.awaiting is not None:
            return "awaiting approval"
        return "done" if self.done else "running"

    @property
    def trajectory(self) -> Any:
        """The gradient steps' records (empty for methods without gradient steps)."""
        from catalyst_nb.trajectory import Trajectory

        return self.optimizer.trajectory if self.config.method in _GRADIENT_METHODS else Trajectory()

    # ---- driving ---------------------------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        """One unit of work (a gradient step, one phase of a round, one LLM-only round), recorded with
        every event it emitted; returns the last of them, as the events file holds it."""
        self._record_emitted()  # a decision taken on the optimizer between two calls (the approval panel)
        if self.done:
            raise RuntimeError(f"the {self.config.method} run is done; nothing left to step")
        self._in_unit = True
        if self.config.method == "llm-only":
            events = [self._llm_only_round()]
        else:
            events = self._events_of(self.optimizer.step())
        self._in_unit = False
        self._record(events)
        return events[-1]

    @property
    def _state_key(self) -> str:
        """The saved state's entry for the optimizer (LLM-only saves its LLM optimizer)."""
        return "llm" if self.config.method == "llm-only" else "optimizer"

    def save_state(self) -> None:
        """Write the state the folder resumes from, if a unit was recorded since the last write.

        After a round event, at the run's end, when :meth:`run` returns or stops, on :meth:`close`, and
        otherwise at most every :data:`STATE_EVERY_S` seconds of gradient steps: the state is the whole
        optimizer (checksummed, synced to disk), and writing it after each 60 ms step cost 7 ms a step.
        A crash loses at most those seconds of steps; the resume is exact from the state written (the
        events after it are dropped and taken again).  A unit stopped half-way (Ctrl-C inside a step) is
        never written: the state of the last recorded unit is not in memory any more, so that stop loses
        the steps since the last write, as a crash does."""
        if self.folder is None or not self._unsaved or self._in_unit:
            return  # nothing new, or stopped inside a unit (its half-done state would not resume exactly)
        self.folder.save_state({self._state_key: self.optimizer.state_dict()}, n_events=len(self.events))
        self._unsaved = False
        self._saved_at = time.perf_counter()

    def run(self, *, progress: bool = True) -> dict[str, Any]:
        """Drive the run to its end and return :meth:`summary`; returns early, with status ``awaiting
        approval``, when a restart waits for a decision nobody here can take."""
        self._record_emitted()
        bar = self._progress_bar() if progress else None
        try:
            while not self.done:
                waiting = self.awaiting
                if waiting is not None and not self._decide_awaiting_approval(waiting):
                    break
                self.step()
                if bar is not None:
                    bar.update(self._progress_position() - bar.n)
        finally:
            self.save_state()  # also when stopped between units (Ctrl-C); a unit stopped half-way is not written
            if bar is not None:
                bar.close()
        return self.summary()

    def _decide_awaiting_approval(self, waiting: Any) -> bool:
        """THE place where a run meets a restart that awaits approval; returns whether the run goes on.

        With ``approval="human"`` nobody in this process decides: :meth:`run` returns and a notebook's
        approval panel (or any code) decides on :attr:`optimizer`; the next :meth:`run` continues.  With
        ``approval_inbox`` the decision comes through the run folder: this waits for it and applies it.
        """
        if self._waiter is None:
            return False
        self._waiter.wait(self.optimizer, on_event=self.on_event)  # the optimizer emits the decision event
        self._record_emitted()
        return not self.done

    def _events_of(self, result: Any) -> list[dict[str, Any]]:
        """The lines for what one optimizer step did: every round event it emitted (in order, even those
        it did not return), then the returned unit unless it is one of them (a step record, an approval)."""
        units = list(result) if isinstance(result, (list, tuple)) else [result]
        emitted = self._take_emitted()
        return [_event_of(e) for e in emitted] + [_event_of(u) for u in units if not any(u is e for e in emitted)]

    def _take_emitted(self) -> list[Any]:
        events = getattr(self.optimizer, "events", None)
        if self.config.method not in _GRADIENT_METHODS or events is None:
            return []
        new, self._seen = list(events[self._seen:]), len(events)
        return new

    def _record_emitted(self) -> None:
        if self.optimizer is not None:
            emitted = self._take_emitted()
            if emitted:
                self._record([_event_of(e) for e in emitted])

    def _record(self, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)
        if self.folder is not None:
            for event in events:
                self.folder.append_event(event)
            self._unsaved = True
            if (self.done or any(e.get("type") != "step" for e in events)
                    or time.perf_counter() - self._saved_at >= STATE_EVERY_S):
                self.save_state()
        if self.on_event is not None:
            for event in events:
                self.on_event(event)

    def _llm_only_round(self) -> dict[str, Any]:
        """OPRO-style: one LLM round on the templates scored so far; hard prompts scored raw."""
        from catalyst_nb.evaluation import evaluate_templates
        from catalyst_nb.llm.errors import LLMError
        from catalyst_nb.optim.events import ProposalsScored, Skipped

        opt, r = self.optimizer, len(self.events)  # one event per round: the events count the rounds done
        try:
            new = opt.ask(opt.scored, round=r)
            scored = {p.id: evaluate_templates(self.context.clip, p.template, self.context.scoring) for p in new}
            opt.tell({i: (s.loss, s.accuracy) for i, s in scored.items()})
            return _event_of(ProposalsScored(round=r, step=0, proposals=tuple(opt.get(p.id) for p in new)))
        except LLMError as exc:
            return _event_of(Skipped(round=r, step=0, reason=f"LLM error: {type(exc).__name__}: {exc}"))

    def _progress_bar(self) -> Any:
        from tqdm.auto import tqdm

        total = self.optimizer.total_steps if self.config.method in _GRADIENT_METHODS else \
            (self.config.catalyst.rounds if self.optimizer is not None else 0)
        unit = "step" if self.config.method in _GRADIENT_METHODS else "round"
        return tqdm(total=total, initial=self._progress_position(), unit=unit, leave=False,
                    desc=f"{self.config.method} seed {self.config.seed}")

    def _progress_position(self) -> int:
        if self.config.method in _GRADIENT_METHODS:
            return self.optimizer.budget_used
        return len(self.events)

    # ---- results ---------------------------------------------------------------------------------
    def template(self) -> str:
        """The run's prompt as text: the context's projection, or the chosen hard template."""
        if self.config.method in _GRADIENT_METHODS:
            return self.optimizer.learner.to_text().template
        if self.config.method == "llm-only":
            return self.optimizer.best().template
        if self._hand_written is None:
            from catalyst_nb.experiment.summary import best_hand_written

            self._hand_written = best_hand_written(self.context)
        return self._hand_written[0]

    def evaluate(self, split: str = "test") -> Any:
        """An :class:`~catalyst_nb.evaluation.EvalResult` of the run's prompt on ``split``: ``test`` (also
        ``base`` in a base-to-new run), ``scoring``, ``train``, or ``new`` (base-to-new: the classes the
        run never saw, prompted with the learned context)."""
        from catalyst_nb.evaluation import evaluate_classifier, evaluate_templates

        ctx = self.context
        features = {"test": ctx.test, "base": ctx.test, "scoring": ctx.scoring, "train": ctx.train, "new": ctx.test_new}
        if split not in features:
            raise ValueError(f"split={split!r} is not one of {sorted(features)}")
        if features[split] is None:
            raise ValueError(f"split={split!r} exists only in a base-to-new run (base_to_new=true)")
        if self.config.method not in _GRADIENT_METHODS:
            return evaluate_templates(ctx.clip, self.template(), features[split])
        if split != "new":
            return self.optimizer.evaluate(features[split])
        import torch

        from catalyst_nb.experiment.build import make_learner

        other = make_learner(self.config, ctx.clip, tuple(ctx.test_new.classnames))
        with torch.no_grad():
            other.ctx.copy_(self.optimizer.learner.ctx.detach())
            weights = other.text_features()
        return evaluate_classifier(weights, ctx.test_new, logit_scale=ctx.clip.logit_scale)

    def summary(self) -> dict[str, Any]:
        """What ``summary.json`` holds; while the run is not done, its status and the common fields.

        The first call after the run is done writes ``summary.json`` and ``report.html`` to the folder.
        """
        from catalyst_nb.experiment import summary as summaries

        if self._summary is not None:
            return dict(self._summary)
        if not self.done:
            return {**summaries.common_summary(self.config, self.context), "status": self.status}
        method = self.config.method
        if method == "zero-shot":
            summary = summaries.zero_shot_summary(self.config, self.context, self.evaluate)
        elif method == "llm-only":
            summary = summaries.llm_only_summary(self.config, self.context, self.optimizer, self.evaluate)
        else:
            summary = summaries.gradient_summary(self.config, self.context, self.optimizer, self.evaluate)
        summary["seconds"] = round(time.perf_counter() - self._started, 2)
        self._summary = summary
        if self.folder is not None:
            self._write_results(summary)
            self.folder.release()  # a finished run writes nothing more: the folder is free for readers and writers
        return dict(summary)

    def _write_results(self, summary: dict[str, Any]) -> None:
        self.folder.write_summary(summary)
        try:
            from catalyst_nb.runs.report import write_report

            write_report(self.folder, summary)
        except ImportError as exc:  # plotly is a dependency; a broken install should not lose the run
            log.warning("report not written: %s", exc)

    def dashboard(self, **options: Any) -> Any:
        """The live dashboard (inspector, approval panel, accuracy per stage) of a gradient method's run."""
        if self.config.method not in _GRADIENT_METHODS:
            raise ValueError(f"method={self.config.method!r} has no gradient steps to show; the dashboard "
                             f"follows {', '.join(_GRADIENT_METHODS)}")
        from catalyst_nb.widgets import dashboard  # widgets only when asked for: the run layer never needs them

        return dashboard(self.optimizer, **options)

    # ---- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop what this experiment started (the local LLM server) and free its folder for other writers;
        the records stay readable."""
        client, self._own_client = self._own_client, None
        try:
            self.save_state()
            if client is not None and hasattr(client, "close"):
                client.close()
        finally:
            if self.folder is not None:
                self.folder.release()

    def __enter__(self) -> "Experiment":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f", folder={os.fspath(self.folder.path)!r}" if self.folder is not None else ""
        return f"Experiment(method={self.config.method!r}, seed={self.config.seed}, status={self.status!r}{where})"
