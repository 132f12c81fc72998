"""RestartApproval: the panel where a person decides a restart between two gradient stages.

The optimizer, run with ``approval="human"``, stops at a restart and returns an ``AwaitingApproval``
(scored proposals, the policy's recommendation, the meta-prompt and the LLM's raw replies).  This panel
shows it and acts only through the optimizer's public methods: ``approve(candidate_id, text=None)``,
``reject()`` and ``suggest(text)``; ``preview(text)`` feeds the live preview of what the context would
hold.  Every button has a Python twin on the panel (:meth:`approve`, :meth:`reject`, :meth:`suggest`),
so a notebook can be driven without clicking and a test can click without a browser.

Everything an LLM or a person wrote is shown escaped: a reply holding ``<script>`` or ``<img onerror=..>``
reads as text and never runs.
"""
from __future__ import annotations

import html
from typing import Any

from catalyst_nb.optim.restart_rule import cost_text

__all__ = ["RestartApproval", "decision_html", "preview_html"]

_esc = html.escape


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "–" if value is None else format(value, spec)


def preview_html(report: Any) -> str:
    """A load report (``LoadReport``) as escaped HTML: slot tokens, padding, cut tokens, ignored text."""
    tokens = " ".join(f"<code>{_esc(str(t))}</code>" for t in report.tokens)
    parts = [f"context would hold: {tokens}"]
    if report.n_padded:
        parts.append(f"{report.n_padded} filler slot(s) added")
    if report.dropped:
        parts.append("cut: " + " ".join(f"<code>{_esc(str(t))}</code>" for t in report.dropped))
    if report.ignored_text:
        parts.append(f"ignored (no slot): <code>{_esc(report.ignored_text)}</code>")
    return "<div class='catalyst-preview'>" + " · ".join(parts) + "</div>"


def decision_html(data: Any) -> str:
    """A decision event's evidence as escaped HTML: the context's and the weighed proposal's scoring
    accuracy and loss side by side, what the restart costs, and the rule's reason."""
    current, proposal = data.get("current"), data.get("proposal")
    parts = []
    if current:
        parts.append(f"context: accuracy {_fmt(current.get('accuracy'), '.3f')}, loss {_fmt(current.get('loss'))}")
    if proposal:
        parts.append(f"proposal {_esc(str(data.get('proposal_id')))}: accuracy {_fmt(proposal.get('accuracy'), '.3f')}, "
                     f"loss {_fmt(proposal.get('loss'))}")
    if current and proposal:
        parts.append(f"<b>{_esc(cost_text(current, proposal))}</b>")
    if data.get("reason"):
        parts.append(f"<i>{_esc(str(data['reason']))}</i>")
    return "<div class='catalyst-decision'>" + " · ".join(parts) + "</div>"


class RestartApproval:
    """Approve, edit or reject the proposals of one round; disables itself once it has acted.

    Args:
        optimizer: the ``CatalystOptimizer`` that is waiting.
        awaiting: the ``AwaitingApproval`` to decide (default: ``optimizer.awaiting``).
    """

    def __init__(self, optimizer: Any, awaiting: Any = None) -> None:
        awaiting = awaiting if awaiting is not None else getattr(optimizer, "awaiting", None)
        if awaiting is None:
            raise ValueError("the optimizer is not waiting for an approval (optimizer.awaiting is None)")
        self.optimizer = optimizer
        self.awaiting = awaiting
        self.outcome: dict[str, Any] | None = None
        self._build()

    # ------------------------------------------------------------------------------------------ layout

    def _build(self) -> None:
        import ipywidgets as w

        a = self.awaiting
        self.title = w.HTML(
            f"<h4>Round {a.round}: choose the restart</h4>"
            f"<div>current soft prompt on the scoring split: loss {_fmt(a.current.get('loss'))}, "
            f"accuracy {_fmt(a.current.get('accuracy'), '.3f')} · "
            f"recommended: <b>{_esc(self._recommended_text())}</b></div>"
            f"{self._cost_html()}"
        )
        self.table = w.HTML(self._table_html())
        self.editors: list[Any] = []
        self.previews: list[Any] = []
        self.approve_buttons: list[Any] = []
        rows = []
        for rank, cand in enumerate(a.proposals, start=1):
            editor = w.Textarea(value=cand.template, layout=w.Layout(width="60%", height="2.6em"))
            preview = w.HTML(self._preview(cand.template))
            button = w.Button(description=f"Approve #{rank}", tooltip=f"restart from proposal {cand.id}",
                              button_style="success" if cand.id == a.recommended else "")
            editor.observe(lambda change, p=preview: setattr(p, "value", self._preview(change["new"])), names="value")
            button.on_click(lambda _b, i=rank - 1: self._clicked(self.approve, i))
            self.editors.append(editor)
            self.previews.append(preview)
            self.approve_buttons.append(button)
            rows.append(w.VBox([w.HBox([w.HTML(f"<b>#{rank}</b>"), editor, button]), preview]))
        self.reject_button = w.Button(description="Reject all", button_style="warning",
                                      tooltip="keep the current context and continue")
        self.reject_button.on_click(lambda _b: self._clicked(self.reject))
        self.own_text = w.Textarea(placeholder="or write your own template, e.g. a photo of a {}.",
                                   layout=w.Layout(width="60%", height="2.6em"))
        self.own_preview = w.HTML()
        self.own_text.observe(lambda change: setattr(self.own_preview, "value", self._preview(change["new"])),
                              names="value")
        self.own_button = w.Button(description="Use my text", button_style="info")
        self.own_button.on_click(lambda _b: self._clicked(self.suggest, self.own_text.value))
        self.details = w.Accordion(children=[
            w.HTML(f"<pre>{_esc(a.meta_prompt)}</pre>"),
            w.HTML("".join(f"<pre>{_esc(r)}</pre>" for r in a.replies) or "<i>no replies</i>"),
            w.HTML(self._dropped_html()),
        ], selected_index=None)
        for i, title in enumerate(("meta-prompt", f"raw replies ({len(a.replies)})",
                                   f"dropped lines ({len(a.dropped)})")):
            self.details.set_title(i, title)
        self.result = w.HTML()
        self.widget = w.VBox([self.title, self.table, *rows,
                              w.HBox([self.own_text, self.own_button]), self.own_preview,
                              self.reject_button, self.details, self.result])

    def _ipython_display_(self) -> None:  # pragma: no cover - exercised in notebooks
        from IPython.display import display

        display(self.widget)

    def _recommended_text(self) -> str:
        rec = self.awaiting.recommended
        if rec is None:
            return "keep the current context"
        cand = next((c for c in self.awaiting.proposals if c.id == rec), None)
        return rec if cand is None else f"#{self.awaiting.proposals.index(cand) + 1} {cand.template}"

    def _cost_html(self) -> str:
        """What the best proposal would cost against the context, and the rule's reason."""
        a = self.awaiting
        scored = [c for c in a.proposals if c.loss is not None and c.accuracy is not None]
        rec = next((c for c in scored if c.id == a.recommended), scored[0] if scored else None)
        data = {"current": dict(a.current), "reason": getattr(a, "reason", ""),
                "proposal_id": rec.id if rec else None,
                "proposal": {"loss": rec.loss, "accuracy": rec.accuracy} if rec else None}
        return decision_html(data)

    def _table_html(self) -> str:
        head = ("<tr><th>rank</th><th>template</th><th>source</th><th>scoring loss</th>"
                "<th>scoring accuracy</th><th>against the context</th><th>as loaded</th><th></th></tr>")
        rows = []
        for rank, c in enumerate(self.awaiting.proposals, start=1):
            source = getattr(c.source, "value", c.source)
            mark = "★ recommended" if c.id == self.awaiting.recommended else ""
            rows.append(
                f"<tr><td>{rank}</td><td><code>{_esc(c.template)}</code></td><td>{_esc(str(source))}</td>"
                f"<td>{_fmt(c.loss)}</td><td>{_fmt(c.accuracy, '.3f')}</td><td>{self._points(c)}</td>"
                f"<td><code>{_esc(str(c.loaded or ''))}</code></td><td>{mark}</td></tr>"
            )
        return f"<table class='catalyst-proposals'>{head}{''.join(rows)}</table>"

    def _points(self, cand: Any) -> str:
        """Scoring-accuracy points a restart from ``cand`` gains (+) or costs (−) against the context."""
        now = self.awaiting.current.get("accuracy")
        if cand.accuracy is None or now is None:
            return "–"
        return f"{100 * (cand.accuracy - now):+.1f} points"

    def _dropped_html(self) -> str:
        if not self.awaiting.dropped:
            return "<i>no dropped lines</i>"
        rows = "".join(f"<tr><td><code>{_esc(line)}</code></td><td>{_esc(reason)}</td></tr>"
                       for line, reason in self.awaiting.dropped)
        return f"<table><tr><th>line</th><th>reason</th></tr>{rows}</table>"

    def _preview(self, text: str) -> str:
        if not text.strip():
            return ""
        try:
            return preview_html(self.optimizer.preview(text))
        except ValueError as exc:
            return f"<div class='catalyst-preview-error'>cannot load: {_esc(str(exc))}</div>"

    # ------------------------------------------------------------------------------------------ actions

    @property
    def decided(self) -> bool:
        return self.outcome is not None

    def _check_open(self) -> None:
        if self.decided:
            raise RuntimeError(f"this panel already acted ({self.outcome['action']})")

    def approve(self, index: int, text: str | None = None) -> Any:
        """Approve proposal ``index`` (0-based rank); the text in its editor is used when it was edited."""
        self._check_open()
        if not 0 <= index < len(self.awaiting.proposals):
            raise ValueError(f"index={index!r}; there are {len(self.awaiting.proposals)} proposals")
        cand = self.awaiting.proposals[index]
        if text is None:
            edited = self.editors[index].value.strip()
            text = edited if edited and edited != cand.template else None
        return self._act("approve", lambda: self.optimizer.approve(cand.id, text=text),
                         chosen=cand.id, text=text or cand.template)

    def reject(self) -> Any:
        """Keep the current context (no restart this round)."""
        self._check_open()
        return self._act("reject", self.optimizer.reject, chosen=None, text=None)

    def suggest(self, text: str) -> Any:
        """Restart from a person's own template."""
        self._check_open()
        if not text or not text.strip():
            raise ValueError(f"text={text!r} is empty")
        return self._act("suggest", lambda: self.optimizer.suggest(text.strip()), chosen=None, text=text.strip())

    def _clicked(self, action: Any, *args: Any) -> None:
        """A button press: errors the person can fix are shown in the panel (the Python twins raise them)."""
        try:
            action(*args)
        except (ValueError, KeyError, RuntimeError) as exc:
            if "not done" not in self.result.value:
                self.result.value = f"<div class='catalyst-error'>not done: {_esc(str(exc))}</div>"

    def _act(self, action: str, call: Any, *, chosen: str | None, text: str | None) -> Any:
        try:
            result = call()
        except (ValueError, KeyError) as exc:  # e.g. a template that cannot be loaded: the panel stays open
            self.result.value = f"<div class='catalyst-error'>not done: {_esc(str(exc))}</div>"
            raise
        self.outcome = {"action": action, "chosen": chosen, "text": text, "result": result}
        self.result.value = self._outcome_html()
        self._disable()
        return result

    def _outcome_html(self) -> str:
        assert self.outcome is not None
        decision = next((e for e in reversed(tuple(getattr(self.optimizer, "events", ())))
                         if getattr(e, "kind", None) == "decision" and e.round == self.awaiting.round), None)
        template = decision.data.get("template") if decision is not None else self.outcome["text"]
        action = _esc(self.outcome["action"])
        evidence = decision_html(decision.data) if decision is not None else ""
        if template is None:
            return (f"<div class='catalyst-outcome'><b>{action}</b>: no restart; "
                    f"the current context continues</div>{evidence}")
        loaded = ""
        try:
            loaded = " (context will hold " + " ".join(
                f"<code>{_esc(str(t))}</code>" for t in self.optimizer.preview(template).tokens) + ")"
        except ValueError:
            pass
        return (f"<div class='catalyst-outcome'><b>{action}</b>: the next step restarts from "
                f"<code class='catalyst-chosen'>{_esc(template)}</code>{loaded}</div>{evidence}")

    def _disable(self) -> None:
        for widget in (*self.editors, *self.approve_buttons, self.reject_button, self.own_text, self.own_button):
            widget.disabled = True
