"""Meta-prompts: how the scored history is put in front of the LLM.

Two styles, same content. The paper's structure (role, one-line task, the candidates with loss and
accuracy listed worst first, the instruction to write new templates that differ from the old ones with
loss as low as possible, and the requirements: how many, how short, text only) is written for chat
models in :func:`chat_messages`. Base models without a chat template do not follow instructions; they
continue text, so :func:`completion_prompt` shows the same history as a scored list and opens a new
numbered list for the model to continue. :func:`build_request` picks the style from the client's kind
unless the user chooses one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from .client import ChatMessage, LLMRequest
from .history import PLACEHOLDER, ScoredTemplate
from .parser import is_class_word, with_placeholder

__all__ = [
    "MetaPromptConfig",
    "TaskDescription",
    "build_request",
    "caption_prompt",
    "hide_filler",
    "chat_messages",
    "completion_prompt",
    "ordered_history",
    "requested_count",
    "shown_templates",
]

STYLES = ("auto", "chat", "completion", "captions")


@dataclass(frozen=True)
class TaskDescription:
    """What the classifier is for, in a line each: shown to the LLM so it can use domain words."""

    dataset: str
    images: str
    classnames: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.dataset.strip():
            raise ValueError("TaskDescription.dataset must be non-empty")
        if not self.images.strip():
            raise ValueError("TaskDescription.images must be non-empty (what do the images show?)")
        object.__setattr__(self, "classnames", tuple(self.classnames))


@dataclass(frozen=True)
class MetaPromptConfig:
    """How many proposals to ask for, their word limit (``{}`` counts as a word; the paper asks for 3
    templates under 9 words, i.e. ``max_words=8``), and how many of the best tried templates to show.

    ``without_filler``: show the chat style's history with the padding words of projected prompts
    removed (:func:`hide_filler`).  A chat model shown "x x x x a photo of a {}." copies the filler;
    shown "a photo of a {}." it writes new templates.

    ``class_word``: how the chat style writes the class slot (any spelling the parser reads back as
    ``{}``, e.g. "[CLASS]").  A code-tuned chat model (the local Qwen2.5-Coder) reads ``{}`` as a format
    field and fills it in: shown "a photo of a {}." it wrote "a photo of a shirt." in 3 of 3 draws; shown
    "a photo of a [CLASS]." it kept the slot and wrote new templates in 3 of 3 (README, "Controls and LLMs").
    """

    n_proposals: int = 3
    max_words: int = 8
    max_history: int = 20
    style: str = "auto"
    show_classnames: bool = False
    extra: tuple[str, ...] = field(default=())
    without_filler: bool = False
    class_word: str = PLACEHOLDER

    def __post_init__(self) -> None:
        if not isinstance(self.class_word, str) or not is_class_word(self.class_word):
            raise ValueError(f"class_word must be a class slot the parser reads back as {PLACEHOLDER} "
                             f"('{{}}', '[CLASS]', '<class>', ...), got {self.class_word!r}")
        if not isinstance(self.n_proposals, int) or not 1 <= self.n_proposals <= 20:
            raise ValueError(f"n_proposals must be an int in [1, 20], got {self.n_proposals!r}")
        if not isinstance(self.max_words, int) or not 2 <= self.max_words <= 60:
            raise ValueError(f"max_words must be an int in [2, 60], got {self.max_words!r}")
        if not isinstance(self.max_history, int) or self.max_history < 1:
            raise ValueError(f"max_history must be an int >= 1, got {self.max_history!r}")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {self.style!r}")
        object.__setattr__(self, "extra", tuple(self.extra))


def ordered_history(history: Sequence[ScoredTemplate], *, max_history: int) -> list[ScoredTemplate]:
    """The ``max_history`` best distinct templates, listed worst first (highest loss first).

    Worst first puts the best examples nearest to where the model starts writing, as in the paper.
    Ties keep their input order; a repeated text keeps its best score.
    """
    best: dict[str, ScoredTemplate] = {}
    for item in history:
        if item.template not in best or item.loss < best[item.template].loss:
            best[item.template] = item
    kept = sorted(best.values(), key=lambda t: t.loss)[:max_history]
    return sorted(kept, key=lambda t: -t.loss)


# The prompt learner pads a short context with "X" (CoOp's placeholder), and projections of slots that
# barely moved decode to it or to its neighbours ("x", "xx", a word piece "##x"): words of x's only are filler.
_FILLER = re.compile(r"^(##)?x+$", re.IGNORECASE)


def hide_filler(template: str) -> str:
    """``template`` without its filler words ("x x x x a photo of a {}." -> "a photo of a {}.")."""
    words = [w for w in template.split() if not _FILLER.match(w)]
    return " ".join(words) if any(PLACEHOLDER in w for w in words) else template


def _without_filler(history: Sequence[ScoredTemplate]) -> list[ScoredTemplate]:
    return [ScoredTemplate(hide_filler(h.template), h.loss, h.accuracy, h.source) for h in history]


def _task_lines(task: TaskDescription, config: MetaPromptConfig) -> list[str]:
    lines = [f"Task: classify images of the {task.dataset} dataset. The images show {task.images.rstrip('.')}."]
    if config.show_classnames and task.classnames:
        lines.append("The classes are: " + ", ".join(task.classnames) + ".")
    return lines


def chat_messages(history: Sequence[ScoredTemplate], task: TaskDescription, config: MetaPromptConfig | None = None) -> tuple[ChatMessage, ...]:
    """The chat meta-prompt: a system role and one user message."""
    config = config or MetaPromptConfig()
    system = (
        "You improve the text prompt of a CLIP-style image classifier. From prompt templates and the "
        "scores they reached you work out which kinds of templates help, and you write better ones."
    )
    lines = _task_lines(task, config)
    word = config.class_word
    lines.append(
        f"A template is a short text in which {word} stands for the class name; the classifier "
        "fills in every class name and picks the text that matches the image best."
    )
    if config.without_filler:
        history = _without_filler(history)
    shown = ordered_history(history, max_history=config.max_history)
    if shown:
        lines.append("")
        lines.append("Templates tried so far, from the worst to the best (lower loss is better):")
        for item in shown:
            lines.append("")
            lines.append(f"template: {item.template.replace(PLACEHOLDER, word)}")
            lines.append(f"loss: {item.loss:.3f}   accuracy: {100 * item.accuracy:.1f}%")
    lines.append("")
    k = config.n_proposals
    lines.append(
        f"Write {k} new template{'s' if k > 1 else ''} that differ from all templates above and that you "
        "expect to reach a loss as low as possible."
    )
    lines.append("Requirements:")
    lines.append(f"- each template has at most {config.max_words} words, counting {word} as one word;")
    spelled = "" if word == PLACEHOLDER else ", written exactly so,"
    lines.append(f"- each template contains {word} exactly once{spelled} and names no class;")
    lines.extend(f"- {line}" for line in config.extra)
    lines.append("- reply with the template text only, one template per line, without numbers, quotes or comments.")
    return (ChatMessage("system", system), ChatMessage("user", "\n".join(lines)))


def completion_prompt(history: Sequence[ScoredTemplate], task: TaskDescription, config: MetaPromptConfig | None = None) -> str:
    """The continuation meta-prompt for base models: a scored list, then a new list opened at "1."."""
    config = config or MetaPromptConfig()
    lines = [
        f"Prompt templates for a CLIP image classifier on {task.dataset} ({task.images.rstrip('.')}).",
        f"In each template {PLACEHOLDER} is replaced by the class name. Lower loss is better.",
    ]
    if config.show_classnames and task.classnames:
        lines.append("Classes: " + ", ".join(task.classnames) + ".")
    lines.extend(config.extra)
    shown = ordered_history(history, max_history=config.max_history)
    if shown:
        lines.append("")
        lines.append("Tried templates, worst first:")
        for item in shown:
            lines.append(f"- {item.template} (loss {item.loss:.2f}, accuracy {100 * item.accuracy:.0f}%)")
    lines.append("")
    lines.append(
        f"{config.n_proposals} new templates, different from the tried ones, each at most "
        f"{config.max_words} words, with lower loss:"
    )
    lines.append("1.")
    return "\n".join(lines)


def caption_prompt(history: Sequence[ScoredTemplate], task: TaskDescription, config: MetaPromptConfig | None = None) -> str:
    """The caption-list continuation for small base models: tried templates as bare lines, no scores.

    A 270M base model copies whatever it sees: shown "(loss 0.91, accuracy 72%)" it writes scores back,
    shown a numbered list it writes numbers.  Bare lines, worst first so the best sit nearest the cut,
    make the likeliest continuation one more line of the same kind; one line per call (stop at the
    newline), several calls per round.  Measured on the embedded model with Gemma 3 270M, this gives
    about 3 new valid templates in 8 calls, where the scored list gave almost none.
    """
    config = config or MetaPromptConfig()
    lines = [f"Captions for {task.images.rstrip('.')} ({task.dataset}); {PLACEHOLDER} is the item:"]
    shown = ordered_history(history, max_history=config.max_history)
    lines.extend(item.template for item in shown)
    return "\n".join(lines) + "\n"


def completion_stop(config: MetaPromptConfig) -> tuple[str, ...]:
    """Stop sequences that end the continuation after the requested list."""
    return ("\n\n", f"\n{config.n_proposals + 1}.")


def resolve_style(style: str, client_kind: str) -> str:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    return client_kind if style == "auto" else style


def build_request(
    history: Sequence[ScoredTemplate],
    task: TaskDescription,
    *,
    client_kind: str,
    model: str,
    config: MetaPromptConfig | None = None,
    temperature: float | None = 0.7,
    top_p: float | None = None,
    max_tokens: int | None = 128,
    n: int = 1,
    seed: int | None = None,
) -> LLMRequest:
    """The full request for one proposal round, in the style ``config.style`` (``auto``: the client's kind).

    A user may choose the other style on purpose: the completion-style list then goes to a chat model
    as one user message, and the chat-style text goes to a completion model as plain text.
    """
    config = config or MetaPromptConfig()
    style = resolve_style(config.style, client_kind)
    common = dict(model=model, temperature=temperature, top_p=top_p, max_tokens=max_tokens, n=n, seed=seed)
    if style == "chat":
        messages = chat_messages(history, task, config)
        if client_kind == "chat":
            return LLMRequest(messages=messages, **common)  # type: ignore[arg-type]
        text = "\n\n".join(m.content for m in messages) + "\n\n"
        return LLMRequest(prompt=text, **common)  # type: ignore[arg-type]
    if style == "captions":
        prompt = caption_prompt(history, task, config)
        if client_kind == "chat":
            return LLMRequest(messages=(ChatMessage("user", prompt),), stop=("\n",), **common)  # type: ignore[arg-type]
        return LLMRequest(prompt=prompt, stop=("\n",), **common)  # type: ignore[arg-type]
    prompt = completion_prompt(history, task, config)
    if client_kind == "chat":
        return LLMRequest(messages=(ChatMessage("user", prompt),), stop=completion_stop(config), **common)  # type: ignore[arg-type]
    return LLMRequest(prompt=prompt, stop=completion_stop(config), **common)  # type: ignore[arg-type]


_CHAT_ITEM = "template: "
_LIST_ITEM = "- "


def _request_text(request: LLMRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    return "\n".join(m.content for m in request.messages or () if m.role == "user")


def shown_templates(request: LLMRequest) -> list[str]:
    """The templates a request shows, in its order: the inverse of every style's rendering.

    A proposal source that is not an LLM (the random-edit control) reads the same templates the LLM
    would have read from the same request, so both work from one history.
    """
    text = _request_text(request)
    lines = text.split("\n")
    if request.stop == ("\n",):  # captions: a header line, then the bare templates
        return [line for line in lines[1:] if line.strip()]
    out = []
    for line in lines:
        if line.startswith(_CHAT_ITEM):
            out.append(with_placeholder(line[len(_CHAT_ITEM):]))
        elif line.startswith(_LIST_ITEM) and line.endswith("%)") and " (loss " in line:
            out.append(line[len(_LIST_ITEM):line.rindex(" (loss ")])
    return out


def requested_count(request: LLMRequest) -> int:
    """How many templates one reply to ``request`` should hold (captions: one line; lists: the number asked)."""
    if request.stop == ("\n",):
        return 1
    match = re.search(r"\b(\d+) new templates?\b", _request_text(request))
    return int(match.group(1)) if match else 1
