"""Meta-prompts: content, ordering, styles and requests."""

from __future__ import annotations

import hashlib
import json

import pytest

from catalyst_nb.llm import (
    LLMRequest,
    MetaPromptConfig,
    ScoredTemplate,
    TaskDescription,
    build_request,
    chat_messages,
    completion_prompt,
    fill_template,
    normalize_template,
    request_key,
)
from catalyst_nb.llm.meta_prompt import ordered_history

TASK = TaskDescription("Fashion-MNIST", "grayscale photos of single clothing items", ("Shirt", "Sneaker"))
HISTORY = [
    ScoredTemplate("a photo of a {}.", 1.12, 0.62),
    ScoredTemplate("itap of a {}.", 1.45, 0.49),
    ScoredTemplate("a black and white photo of the {}.", 0.94, 0.68),
]


def test_history_is_listed_worst_first_and_capped_to_the_best():
    shown = ordered_history(HISTORY + [ScoredTemplate("a photo of a {}.", 2.0, 0.1)], max_history=2)
    assert [t.template for t in shown] == ["a photo of a {}.", "a black and white photo of the {}."]
    assert [t.loss for t in shown] == [1.12, 0.94]


def test_chat_meta_prompt_has_the_paper_structure():
    system, user = chat_messages(HISTORY, TASK, MetaPromptConfig(n_proposals=4, max_words=7))
    assert system.role == "system" and user.role == "user"
    text = user.content
    assert "Fashion-MNIST" in text and "grayscale photos of single clothing items" in text
    pos = [text.index(t.template) for t in sorted(HISTORY, key=lambda t: -t.loss)]
    assert pos == sorted(pos), "worst first"
    assert "loss: 1.450" in text and "accuracy: 49.0%" in text
    assert "Write 4 new templates" in text and "at most 7 words" in text
    assert "lower loss is better" in text.lower()
    assert "Shirt" not in text  # class names only on request
    _, user2 = chat_messages(HISTORY, TASK, MetaPromptConfig(show_classnames=True))
    assert "Shirt, Sneaker" in user2.content


def test_completion_meta_prompt_is_a_list_to_continue():
    prompt = completion_prompt(HISTORY, TASK, MetaPromptConfig(n_proposals=2, max_words=6))
    lines = prompt.splitlines()
    assert lines[-1] == "1."
    assert "2 new templates" in lines[-2] and "at most 6 words" in lines[-2]
    listed = [l for l in lines if l.startswith("- ")]
    assert listed[0].startswith("- itap of a {}.") and "(loss 1.45, accuracy 49%)" in listed[0]
    assert listed[-1].startswith("- a black and white photo")


def test_style_follows_client_kind_or_user_choice():
    chat = build_request(HISTORY, TASK, client_kind="chat", model="m")
    comp = build_request(HISTORY, TASK, client_kind="completion", model="m", seed=3, temperature=0.5)
    assert chat.kind == "chat" and len(chat.messages) == 2 and chat.stop is None
    assert comp.kind == "completion" and comp.prompt.endswith("1.") and comp.stop == ("\n\n", "\n4.")
    assert (comp.seed, comp.temperature) == (3, 0.5)
    forced = build_request(HISTORY, TASK, client_kind="chat", model="m", config=MetaPromptConfig(style="completion"))
    assert forced.kind == "chat" and forced.messages[0].content.endswith("1.")
    as_text = build_request(HISTORY, TASK, client_kind="completion", model="m", config=MetaPromptConfig(style="chat"))
    assert as_text.kind == "completion" and "Write 3 new templates" in as_text.prompt


def test_empty_history_still_gives_a_prompt():
    assert "Templates tried" not in chat_messages([], TASK)[1].content
    assert completion_prompt([], TASK).endswith("1.")


@pytest.mark.parametrize(
    "kwargs", [{"n_proposals": 0}, {"max_words": 1}, {"max_history": 0}, {"style": "poem"}]
)
def test_config_validation_names_the_value(kwargs):
    with pytest.raises(ValueError, match=str(list(kwargs.values())[0])):
        MetaPromptConfig(**kwargs)


def test_task_and_template_validation():
    with pytest.raises(ValueError):
        TaskDescription("", "x")
    with pytest.raises(ValueError, match="accuracy"):
        ScoredTemplate("a {}", 1.0, 1.5)
    with pytest.raises(ValueError, match="finite"):
        ScoredTemplate("a {}", float("nan"), 0.5)


def test_template_helpers():
    assert fill_template("a photo of a {}.", "coat") == "a photo of a coat."
    assert fill_template("a photo of a", "coat") == "a photo of a coat"
    assert normalize_template("A  photo of a {}.") == normalize_template("a photo of a") == "a photo of a {}"
    assert normalize_template("{} on black") != normalize_template("on black")


def test_request_key_is_stable_and_sensitive():
    a = build_request(HISTORY, TASK, client_kind="completion", model="m", seed=1)
    b = build_request(list(HISTORY), TASK, client_kind="completion", model="m", seed=1)
    assert request_key(a) == request_key(b)
    assert len(request_key(a)) == 64
    for other in (
        build_request(HISTORY, TASK, client_kind="completion", model="m", seed=2),
        build_request(HISTORY, TASK, client_kind="completion", model="m2", seed=1),
        build_request(HISTORY[:2], TASK, client_kind="completion", model="m", seed=1),
        build_request(HISTORY, TASK, client_kind="completion", model="m", seed=1, temperature=0.71),
    ):
        assert request_key(other) != request_key(a)
    assert LLMRequest.from_dict(a.to_dict()) == a
    # pinned value: a change here means old cassettes no longer replay
    pinned = LLMRequest(model="m", prompt="p", temperature=0.5, max_tokens=8, seed=1, stop=("\n",))
    # sha256 of the documented canonical JSON payload, computed independently of request_key
    payload = {
        "format": "catalyst_nb.llm.request/1",
        "request": {"model": "m", "messages": None, "prompt": "p", "temperature": 0.5, "top_p": None,
                    "max_tokens": 8, "n": 1, "seed": 1, "stop": ["\n"]},
    }
    expected = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert request_key(pinned) == expected == "f6d0db2e7357ff7e765fada4aab80efaf7e022591176daae38c829ca6e710b73"


def test_request_validation():
    with pytest.raises(ValueError, match="exactly one"):
        LLMRequest(model="m")
    with pytest.raises(ValueError, match="temperature"):
        LLMRequest(model="m", prompt="p", temperature=3.0)
    with pytest.raises(ValueError, match="n must"):
        LLMRequest(model="m", prompt="p", n=0)


def test_chat_history_without_filler_words():
    from catalyst_nb.llm import ScoredTemplate, TaskDescription
    from catalyst_nb.llm.meta_prompt import MetaPromptConfig, chat_messages, hide_filler

    assert hide_filler("##x x xx X a photo of a {}.") == "a photo of a {}."
    assert hide_filler("x x {}") == "{}" and hide_filler("x x") == "x x"  # nothing left to show: kept as is
    task = TaskDescription("Fashion-MNIST", "clothing")
    history = [ScoredTemplate("x x x x a photo of a {}.", 0.9, 0.7), ScoredTemplate("xx x X x a photo of a {}.", 1.0, 0.6)]
    cleaned = chat_messages(history, task, MetaPromptConfig(without_filler=True))[1].content
    assert "template: a photo of a {}." in cleaned and " x " not in cleaned
    assert cleaned.count("template: ") == 1  # the two projections clean to one template, shown with its best score
    assert "loss: 0.900" in cleaned
    raw = chat_messages(history, task, MetaPromptConfig())[1].content
    assert "template: x x x x a photo of a {}." in raw


def test_chat_meta_prompt_can_write_the_class_slot_as_a_word_and_replies_read_back_as_braces():
    """A code model fills in ``{}``; shown "[CLASS]" it keeps the slot.  Every place the chat prompt names the
    slot uses the word, and what the model writes with it is read back as ``{}``."""
    from catalyst_nb.llm import parse_proposals
    from catalyst_nb.llm.meta_prompt import shown_templates

    config = MetaPromptConfig(class_word="[CLASS]")
    user = chat_messages(HISTORY, TASK, config)[1].content
    assert "{}" not in user
    assert "template: a photo of a [CLASS]." in user and "in which [CLASS] stands for the class name" in user
    assert "counting [CLASS] as one word" in user and "contains [CLASS] exactly once, written exactly so," in user
    request = build_request(HISTORY, TASK, client_kind="chat", model="m", config=config)
    assert set(shown_templates(request)) == {h.template for h in HISTORY}  # the random-edit control reads {} back
    reply = "template: a close-up photo of the [CLASS] item.\nloss: 0.3   accuracy: 85%\na photo of a [CLASS]."
    result = parse_proposals(reply, max_words=10, classnames=TASK.classnames, tried=[h.template for h in HISTORY])
    assert list(result.proposals) == ["a close-up photo of the {} item."]
    assert len(result.rejected) == 2  # the score line, and the slot-kept copy of a tried template
    default = chat_messages(HISTORY, TASK, MetaPromptConfig())[1].content  # unchanged without the option
    assert "template: a photo of a {}." in default and "written exactly so" not in default


@pytest.mark.parametrize("word", ["", "CLASS", "{x}", "[thing]", "{} {}"])
def test_class_word_must_read_back_as_the_placeholder(word):
    with pytest.raises(ValueError, match="class_word"):
        MetaPromptConfig(class_word=word)


def test_chat_presets_show_the_class_slot_as_a_word():
    from catalyst_nb.optim.catalyst_config import PRESETS

    assert {PRESETS[p]["llm"]["chat"]["class_word"] for p in ("paper", "default")} == {"[CLASS]"}
    assert all("class_word" not in PRESETS[p]["llm"]["completion"] for p in ("paper", "default"))
