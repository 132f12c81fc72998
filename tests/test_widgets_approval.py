"""RestartApproval and the dashboard over a real CatalystOptimizer waiting for a person (approval="human").

Every button is clicked with ``.click()``; assertions are on the optimizer's state and events.
"""
from __future__ import annotations

import html

import pytest

from catalyst_nb.data import few_shot, load_embedded_fashion_mnist
from catalyst_nb.features import extract_features
from catalyst_nb.llm import ScriptedClient
from catalyst_nb.optim import AwaitingApproval, CatalystOptimizer
from catalyst_nb.prompt_learner import PromptLearner
from catalyst_nb.templates import check_template
from catalyst_nb.widgets import Dashboard, RestartApproval, TrajectoryInspector, dashboard

# markup lines are dropped by the parser (shown escaped among the raw replies); the last line is a proposal
# whose text HTML must escape
SCRIPT = ('<script>alert("x")</script> {}\n<img src=x onerror=alert(1)> {}\na photo of the {}.\na blurry {}\n'
          'a {} < 5 cm & more')
SCRIPT_2 = 'a dark photo of a {}.\na small {}'  # round 1: new templates, so the round waits again


@pytest.fixture(scope="module")
def splits(tiny_native):
    kw = dict(cache_dir=False, progress=False)
    train = extract_features(tiny_native, few_shot(load_embedded_fashion_mnist("train"), shots=2, seed=1), **kw)
    score = extract_features(tiny_native, few_shot(load_embedded_fashion_mnist("val"), shots=4, seed=1), **kw)
    return train, score


def waiting(clip, splits, replies=(SCRIPT, SCRIPT_2)):
    train, score = splits
    learner = PromptLearner(clip, train.classnames, n_ctx=4, ctx_init="a photo of a", seed=0)
    opt = CatalystOptimizer(learner, train, scoring=score, client=ScriptedClient(list(replies)), approval="human",
                            rounds=2, gradient=dict(total_steps=12, warmup_steps=1, batch_size=8, lr=0.5, seed=1))
    units = opt.run(progress=False)
    assert isinstance(units[-1], AwaitingApproval) and opt.awaiting is units[-1]
    return opt


def _decision(opt, round_index=0):
    return [e for e in opt.events if e.kind == "decision" and e.round == round_index][-1]


def _buttons(panel):
    return [*panel.approve_buttons, panel.reject_button, panel.own_button]


def test_table_lists_the_scored_proposals_escaped(tiny_native, splits):
    opt = waiting(tiny_native, splits)
    panel = RestartApproval(opt)
    html = panel.table.value
    for cand in opt.awaiting.proposals:
        assert f"{cand.loss:.4f}" in html
    assert "<script>" not in html and "<img" not in html, "markup is never a proposal"
    assert "< 5 cm &" not in html and "&lt; 5 cm &amp; more" in html
    raw = panel.details.children[1].value
    assert "<script>" not in raw and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in raw
    assert "<img" not in panel.details.children[0].value  # the meta-prompt quotes tried templates
    if opt.awaiting.recommended is not None:
        assert "★ recommended" in html
    assert len(panel.editors) == len(opt.awaiting.proposals) == len(panel.approve_buttons)


def test_approve_button_restarts_from_that_proposal(tiny_native, splits):
    opt = waiting(tiny_native, splits)
    panel = RestartApproval(opt)
    second = opt.awaiting.proposals[1]
    panel.approve_buttons[1].click()
    decision = _decision(opt)
    assert decision.data["decider"] == "human" and decision.data["chosen"] == second.id
    assert opt.awaiting is None and panel.decided
    assert all(b.disabled for b in _buttons(panel)) and all(e.disabled for e in panel.editors)
    assert "catalyst-chosen" in panel.result.value
    opt.step()  # the restart phase applies the decision
    restart = opt.events[-1]
    assert restart.kind == "restart" and restart.data["template"] == second.template
    with pytest.raises(RuntimeError, match="already acted"):
        panel.reject()


def test_edited_text_is_approved_as_a_human_candidate_with_live_preview(tiny_native, splits):
    opt = waiting(tiny_native, splits)
    first = opt.awaiting.proposals[0]
    panel = RestartApproval(opt)
    before = panel.previews[0].value
    panel.editors[0].value = "a dark photo of {}"
    preview = panel.previews[0].value
    report = opt.preview("a dark photo of {}")
    assert preview != before and all(f"<code>{html.escape(t)}</code>" in preview for t in report.tokens)
    panel.approve_buttons[0].click()
    decision = _decision(opt)
    assert decision.data["edited_from"] == first.id
    assert decision.data["template"] == check_template("a dark photo of {}")
    opt.step()
    assert opt.events[-1].kind == "restart" and opt.events[-1].data["template"] == decision.data["template"]


def test_reject_button_keeps_the_context(tiny_native, splits):
    opt = waiting(tiny_native, splits)
    ctx = opt.learner.ctx.detach().clone()
    panel = RestartApproval(opt)
    panel.reject_button.click()
    decision = _decision(opt)
    assert decision.data["chosen"] is None and decision.data["decider"] == "human"
    assert opt.awaiting is None and opt.learner.ctx.detach().equal(ctx)
    assert "no restart" in panel.result.value and all(b.disabled for b in _buttons(panel))
    assert not any(e.kind == "restart" for e in opt.events)


def test_use_my_text_button_suggests_and_restarts_from_it(tiny_native, splits):
    opt = waiting(tiny_native, splits)
    panel = RestartApproval(opt)
    panel.own_text.value = "<b>a</b> {}"  # a person's text is escaped too
    assert "<b>a</b>" not in panel.own_preview.value
    panel.own_text.value = "a grey {}"
    assert "grey" in panel.own_preview.value
    panel.own_button.click()
    decision = _decision(opt)
    assert decision.data["template"] == check_template("a grey {}") and decision.data["decider"] == "human"
    opt.step()
    assert opt.events[-1].kind == "restart" and opt.events[-1].data["template"] == decision.data["template"]


def test_a_text_that_cannot_be_loaded_keeps_the_panel_open(tiny_native, splits):
    opt = waiting(tiny_native, splits)
    panel = RestartApproval(opt)
    panel.own_text.value = "one two three four five six seven eight {}"  # longer than n_ctx=4
    assert "cut" in panel.own_preview.value
    panel.own_button.click()  # the click shows the error in the panel...
    assert not panel.decided and opt.awaiting is not None and not panel.own_button.disabled
    assert "not done" in panel.result.value and "longer than the context" in panel.result.value
    with pytest.raises(ValueError, match="longer than the context"):  # ...its Python twin raises it
        panel.suggest(panel.own_text.value)
    with pytest.raises(ValueError, match="index=9"):
        panel.approve(9)


def test_panel_needs_a_waiting_optimizer(tiny_native, splits):
    opt = waiting(tiny_native, splits)
    opt.reject()
    with pytest.raises(ValueError, match="not waiting"):
        RestartApproval(opt)


def test_dashboard_composes_and_follows_rounds(tiny_native, splits):
    opt = waiting(tiny_native, splits)
    board = dashboard(opt, redraw_every=0.0)
    assert isinstance(board, Dashboard) and isinstance(board.inspector, TrajectoryInspector)
    first = board.approval
    assert first is not None and board.approval_box.children == (first.widget,)
    assert len(board.stages.info()["stages"]) == 1
    first.approve_buttons[0].click()
    units = opt.run(progress=False)  # restart, stage 1, round 1 -> waits again
    assert isinstance(units[-1], AwaitingApproval) and units[-1] is opt.events[-1]
    # no refresh, no notebook cell: the "awaiting" event itself brought the new panel
    assert board.approval is not first and board.approval.awaiting.round == 1, "a new panel for round 1"
    board.approval.reject_button.click()
    opt.run(progress=False)
    assert opt.done
    board.inspector.flush()
    assert list(board.inspector.figure.data[0].x) == list(range(opt.step_count))
    restarts = [e for e in opt.events if e.kind == "restart"]
    assert list(board.inspector.figure.data[4].x) == [e.step for e in restarts]
    stage_trace_steps = {x for t in board.stages.figure.data if t.mode == "markers" for x in t.x}
    assert stage_trace_steps == {e.step for e in opt.events if e.kind == "stage_end"}


def test_panel_and_dashboard_show_what_the_restart_costs_and_why(tiny_native, splits):
    opt = waiting(tiny_native, splits)
    a = opt.awaiting
    assert a.reason  # the rule's reason travels with the pending decision
    board = dashboard(opt, redraw_every=0.0)
    panel = board.approval
    scored = [c for c in a.proposals if c.accuracy is not None]
    rec = next((c for c in scored if c.id == a.recommended), scored[0])
    points = 100 * (rec.accuracy - a.current["accuracy"])
    words = "level" if abs(points) < 0.05 else f"{'gains' if points > 0 else 'costs'} {abs(points):.1f} points"
    assert words in panel.title.value and html.escape(a.reason) in panel.title.value
    assert f"{points:+.1f} points" in panel.table.value
    panel.approve_buttons[0].click()
    decision = _decision(opt)
    assert decision.data["decider"] == "human" and decision.data["current"] == dict(a.current)
    assert decision.data["proposal_id"] == a.proposals[0].id and "a person chose to restart" in decision.data["reason"]
    assert html.escape(decision.data["reason"]) in panel.result.value
    board.refresh()
    assert "round 0" in board.decisions.value and html.escape(decision.data["reason"]) in board.decisions.value
