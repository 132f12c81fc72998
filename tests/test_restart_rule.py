"""The restart rules as pure functions of scores: what each one chooses, and the reason it gives."""
from __future__ import annotations

import pytest

from catalyst_nb.candidates import Candidate, Source, Status
from catalyst_nb.optim import restart_rule as rules

NOW = {"loss": 0.40, "accuracy": 0.88}


def cand(cid, loss, accuracy):
    return Candidate(id=cid, template=f"a {cid} photo of a {{}}.", source=Source.LLM, status=Status.SCORED,
                     loss=loss, accuracy=accuracy)


def test_cost_text_says_what_a_restart_costs_or_gains_in_points():
    assert rules.cost_text(NOW, {"loss": 0.5, "accuracy": 0.77}) == "this restart costs 11.0 points on the scoring split"
    assert rules.cost_text(NOW, {"loss": 0.3, "accuracy": 0.90}) == "this restart gains 2.0 points on the scoring split"
    assert rules.cost_text(NOW, NOW) == "this restart leaves the scoring accuracy level"


def test_best_and_first_take_a_proposal_whatever_it_costs_and_say_so():
    worse, bad = cand("r0-0", 0.6, 0.70), cand("r0-1", 0.5, 0.77)
    best = rules.choose_best([bad, worse], NOW)
    assert best.chosen == "r0-1" and "costs 11.0 points" in best.reason
    first = rules.choose_first([worse, bad], NOW)
    assert first.chosen == "r0-0" and "costs 18.0 points" in first.reason
    assert rules.choose_best([], NOW).chosen is None


@pytest.mark.parametrize("loss, taken", [(0.39, True), (0.42, True), (0.4201, False), (0.6, False)])
def test_margin_takes_the_best_proposal_only_within_the_margin(loss, taken):
    choice = rules.choose_margin([cand("r0-0", loss, 0.8)], NOW, margin=0.05)
    assert (choice.chosen == "r0-0") is taken and choice.proposal == "r0-0"
    assert choice.reason.startswith("restart" if taken else "context kept")
    assert f"{loss:.4f}" in choice.reason and "0.4000" in choice.reason and "costs 8.0 points" in choice.reason


def test_trust_moves_by_the_largest_step_within_the_margin():
    best = cand("r0-0", 0.6, 0.75)
    blended = {1.0: {"loss": 0.6, "accuracy": 0.75}, 0.5: {"loss": 0.41, "accuracy": 0.87},
               0.25: {"loss": 0.39, "accuracy": 0.89}}
    choice = rules.choose_trust(best, NOW, blended, margin=0.05)
    assert (choice.chosen, choice.step) == ("r0-0", 0.5) and "0.5 of the way" in choice.reason
    kept = rules.choose_trust(best, NOW, {s: {"loss": 0.5, "accuracy": 0.8} for s in blended}, margin=0.05)
    assert kept.chosen is None and kept.reason.startswith("context kept") and kept.proposal == "r0-0"
    with pytest.raises(ValueError, match="blended="):
        rules.choose_trust(best, NOW, {1.5: NOW}, margin=0.05)


def test_probe_keeps_the_context_on_a_tie_and_margins_are_checked():
    assert rules.choose_probe({"current": 0.3, "r0-0": 0.3}, NOW).chosen is None
    assert rules.choose_probe({"current": 0.3, "r0-0": 0.2}, NOW).chosen == "r0-0"
    with pytest.raises(ValueError, match="current"):
        rules.choose_probe({"r0-0": 0.2}, NOW)
    with pytest.raises(ValueError, match="margin=-1"):
        rules.choose_margin([], NOW, margin=-1)
