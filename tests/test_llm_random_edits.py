"""The random-edit control: it reads exactly the templates each meta-prompt style shows, makes one word
edit per proposal, answers as many lines as asked, repeats itself for a seed and differs between seeds,
and goes through the LLM optimizer's own path (parser, tried-check, rounds)."""
from __future__ import annotations

import random

import pytest

from catalyst_nb.llm import ScoredTemplate, TaskDescription
from catalyst_nb.llm.meta_prompt import MetaPromptConfig, build_request, ordered_history, requested_count, \
    shown_templates
from catalyst_nb.llm.optimizer import LLMPromptOptimizer
from catalyst_nb.llm.random_edits import RandomEditClient, random_edit, vocabulary_words

TASK = TaskDescription("Fashion-MNIST", "grayscale photos of clothing items", ("Dress", "Coat"))
HISTORY = [
    ScoredTemplate("x x x x a photo of a {}.", 0.91, 0.70),
    ScoredTemplate("a photo of a {}.", 0.80, 0.77),
    ScoredTemplate("itap of a {} (50%)", 1.20, 0.60),
    ScoredTemplate("a {} template: odd", 1.00, 0.65),
]


@pytest.mark.parametrize("style, kind", [("chat", "chat"), ("chat", "completion"), ("completion", "completion"),
                                         ("completion", "chat"), ("captions", "completion"), ("captions", "chat")])
def test_shown_templates_inverts_every_style(style, kind):
    config = MetaPromptConfig(style=style, n_proposals=4)
    request = build_request(HISTORY, TASK, client_kind=kind, model="m", config=config)
    assert shown_templates(request) == [t.template for t in ordered_history(HISTORY, max_history=20)]
    assert requested_count(request) == (1 if style == "captions" else 4)


def _word_edit_distance_one(a: str, b: str) -> bool:
    x, y = a.split(), b.split()
    if len(x) == len(y):  # a swap: the same words, two places differ
        diff = [i for i in range(len(x)) if x[i] != y[i]]
        return len(diff) == 2 and sorted(x) == sorted(y)
    short, long_ = (x, y) if len(x) < len(y) else (y, x)
    return len(long_) == len(short) + 1 and any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def test_random_edit_makes_one_word_edit_and_keeps_the_placeholder():
    rng = random.Random(0)
    kinds = set()
    for _ in range(300):
        out = random_edit("a photo of a {}.", rng, words=["blue", "shirt"], max_words=6)
        assert out.count("{}") == 1 and len(out.split()) <= 6
        assert _word_edit_distance_one("a photo of a {}.", out), out
        kinds.add(len(out.split()) - 5)
    assert kinds == {-1, 0, 1}  # deletes, swaps and inserts all happen
    full = random_edit("a b c d e {}", random.Random(1), words=["z"], max_words=6)
    assert len(full.split()) <= 6  # at the limit no insert is drawn
    with pytest.raises(ValueError, match="no edit is possible"):
        random_edit("{}", random.Random(0), words=[])


def test_client_through_the_optimizer_repeats_for_a_seed_and_differs_between_seeds():
    plain = HISTORY[:2] + [ScoredTemplate("a blurry photo of the {}.", 1.0, 0.6)]

    def run(seed):
        client = RandomEditClient(["woven", "leather", "studio"], max_words=10)
        opt = LLMPromptOptimizer(client, task=TASK, style="captions", samples=8, seed=seed, n_proposals=8)
        new = opt.ask(plain)
        return opt, [p.template for p in new]

    opt, first = run(1)
    _, again = run(1)
    _, other = run(2)
    assert first == again and first != other
    assert opt.rounds[0].n_calls == 8 and len(opt.rounds[0].replies) == 8
    assert all("\n" not in r for r in opt.rounds[0].replies)  # one line per call, as the caption style asks
    shown = [t.template for t in plain]
    assert first and all(any(_word_edit_distance_one(s, t) for s in shown) for t in first)
    assert len(first) + len(opt.rounds[0].rejected) >= 8  # every edit either became a proposal or was dropped


def test_list_styles_get_as_many_lines_as_asked():
    client = RandomEditClient(["woven"], kind="chat")
    request = build_request(HISTORY, TASK, client_kind="chat", model="m", config=MetaPromptConfig(n_proposals=3), seed=4)
    (text,) = client.complete(request).texts
    assert len(text.splitlines()) == 3


def test_vocabulary_words_are_whole_words(tiny_native):
    words = vocabulary_words(tiny_native.tokenizer)
    assert len(words) > 1000 and "photo" in words
    assert all(w.isalpha() and w.isascii() for w in words)


@pytest.mark.slow
def test_random_edits_method_runs_like_the_catalyst_without_an_llm(tmp_path):
    """`method = "random-edits"`: no server, 8 edits per round through the catalyst's own rounds, and a rerun
    into a fresh folder repeats every edit (they come from the run's hashed seeds)."""
    from catalyst_nb.experiment import execute
    from catalyst_nb.runs import RunConfig, load_run

    config = RunConfig(method="random-edits", shots=1, seed=2, n_ctx=6, steps=12, rounds=2, scoring_shots=4)
    assert not config.uses_llm
    summaries, replies = [], []
    for name in ("a", "b"):
        summaries.append(execute(config, tmp_path / name, progress=False))
        run = load_run(tmp_path / name)
        replies.append([e.data["replies"] for e in run.events if e.kind == "llm"])
    summary = summaries[0]
    assert summary["status"] == "done" and summary["llm"]["calls"] == 16 and summary["llm"]["rounds"] == 2
    assert replies[0] == replies[1] and all(len(r) == 8 for r in replies[0])
    assert summaries[0]["test_accuracy"] == summaries[1]["test_accuracy"]
    with pytest.raises(ValueError, match="rounds >= 1"):
        RunConfig(method="random-edits", rounds=0)
