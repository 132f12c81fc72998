"""Turn an LLM reply into template proposals, dropping what is not one and saying why.

Real replies are messy: bullets and numbering, quotes, a chatty sentence before and after, repeated
lines, blank lines, a score copied from the prompt, a class name where ``{}`` should be, a template
that was already tried, control characters, chat-template tokens, markup (HTML tags).
:func:`parse_proposals` cleans each line and either keeps it or records it as a :class:`RejectedLine`
with a reason code. It never raises on text: zero proposals is an ordinary result.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

from catalyst_nb.templates import PLACEHOLDER, normalize_template, placeholder_problem

__all__ = ["ParseResult", "RejectedLine", "REASONS", "is_class_word", "parse_proposals", "with_placeholder"]

REASONS = {
    "junk": "only formatting or non-printable characters",
    "prose": "a sentence around the list, not a template",
    "no_words": "no words",
    "too_long": "longer than the word or character limit",
    "placeholder": "more than one class placeholder or a stray brace",
    "no_placeholder": "no {} for the class name",
    "class_name": "names a class",
    "repeated": "repeats an earlier line of this reply",
    "tried": "identical to a template already tried",
    "surplus": "more proposals than requested",
    "truncated": "beyond the number of lines read from a reply",
    "markup": "looks like markup (HTML/XML tags or entities), not a prompt",
}


@dataclass(frozen=True)
class RejectedLine:
    """A reply line that was dropped: its raw text, a reason code from ``REASONS``, and details."""

    line: str
    code: str
    detail: str = ""

    @property
    def reason(self) -> str:
        return f"{REASONS[self.code]}: {self.detail}" if self.detail else REASONS[self.code]


@dataclass(frozen=True)
class ParseResult:
    """Proposals kept (in reply order), lines dropped, and repairs made to kept lines."""

    proposals: tuple[str, ...]
    rejected: tuple[RejectedLine, ...]
    notes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.proposals)


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_SPECIAL_TOKENS = re.compile(
    r"<\|[^|<>]{1,40}\|>|</?s>|<(?:eos|bos|pad|unk|end_of_turn|start_of_turn|end_of_text|eot_id)>",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^`{3,}\w*$")
_LIST_MARKER = re.compile(
    r"^(?:[-*•‣◦·+>]+|\(?\d{1,3}\s*[.):\]]|\(\d{1,3}\)|[a-zA-Z][.)](?=\s)|#{1,6})\s*"
)
_LABEL = re.compile(r"^(?:new\s+)?(?:template|prompt|option|proposal|answer)\s*#?\d*\s*[:.\-–—]\s*", re.IGNORECASE)
_SCORE = re.compile(
    r"\s*[(\[|,;:\-–—]*\s*\b(?:with\s+(?:a\s+)?)?(?:loss|accuracy|acc|score)\b\s*(?:of\s+|is\s+|[:=]\s*)?[-+]?\d[\d.,]*\s*%?.*$",
    re.IGNORECASE,
)
_PLACEHOLDERS = re.compile(
    r"\{\{\s*\}\}|\{\s*(?:class|classname|class_name|class name|label|category|object|cls|name)?\s*\}"
    r"|\[\s*(?:class|classname|class_name|class name|label|category|cls)\s*\]"
    r"|<\s*(?:class|classname|class_name|class name|label|category|cls)\s*>",
    re.IGNORECASE,
)


def with_placeholder(text: str) -> str:
    """``text`` with every spelling of the class slot the parser accepts ("[CLASS]", "<label>", "{class}")
    written as ``{}``."""
    return _PLACEHOLDERS.sub(PLACEHOLDER, text)


def is_class_word(word: str) -> bool:
    """Whether ``word`` is one spelling of the class slot that replies are read back with (``{}``,
    "[CLASS]", "<label>", ...): a meta-prompt may show templates with it instead of ``{}``."""
    return bool(word) and _PLACEHOLDERS.fullmatch(word) is not None


# a tag (``<p>``, ``</script>``, ``<img src=x/>``), a comment opener or a character entity; placeholder
# spellings such as ``<class>`` are turned into ``{}`` before this is looked for
_MARKUP = re.compile(r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>|<!--|&(?:[A-Za-z]{2,8}|#\d{1,7}|#x[0-9A-Fa-f]{1,6});")
_INLINE_NUMBER = re.compile(r"\s+(?=\d{1,2}[.)]\s)")
_COMMENT_SPLIT = re.compile(r"\s+[-–—]\s+|\s+//\s+|\s+#\s+")
_QUOTE_PAIRS = {'"': '"', "'": "'", "`": "`", "“": "”", "‘": "’", "«": "»", "„": "“", "*": "*", "_": "_"}
_PROSE_START = re.compile(
    r"^(?:here\b|sure\b|certainly\b|of course\b|okay\b|ok\b|note\b|i\b|i'm\b|i've\b|i'll\b|let me\b|"
    r"let's\b|these\b|this\b|the following\b|below\b|hope\b|explanation\b|remember\b|great\b|"
    r"based on\b|new templates\b|templates\b)",
    re.IGNORECASE,
)


def _printable(text: str) -> str:
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch == "\t" or cat == "Zs":
            out.append(" ")
        elif cat.startswith("C"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def _strip_quotes(text: str) -> str:
    changed = True
    while changed and len(text) >= 2:
        changed = False
        for left, right in _QUOTE_PAIRS.items():
            if text.startswith(left) and text.endswith(right) and len(text) > len(left) + len(right):
                inner = text[len(left) : len(text) - len(right)]
                if left in ("*", "_"):
                    inner = inner.strip("*_")
                text = inner.strip()
                changed = True
                break
    # an unmatched quote left at one end only (the other end was cut with a comment or score)
    if text and text[:1] in "\"“”'‘’«»`" and text.count(text[0]) == 1:
        text = text[1:].strip()
    if text and text[-1:] in "\"“”'‘’«»`*" and text.count(text[-1]) == 1:
        text = text[:-1].strip()
    return text


def _strip_decoration(text: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = _LIST_MARKER.sub("", text, count=1).strip()
        text = _LABEL.sub("", text, count=1).strip()
        text = _strip_quotes(text)
    return text


def _class_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])" + re.escape(name.casefold()) + r"(?:e?s)?(?![\w-])")


def _class_patterns(classnames: Iterable[str]) -> list[tuple[str, re.Pattern[str]]]:
    """Patterns for each class name and, for names like "T-shirt/top", each longer alternative."""
    out: list[tuple[str, re.Pattern[str]]] = []
    for name in classnames:
        variants = {name.strip()}
        if "/" in name:
            variants.update(part.strip() for part in name.split("/") if len(part.strip()) > 3)
        for variant in sorted(variants, key=len, reverse=True):
            if variant:
                out.append((name, _class_pattern(variant)))
    return out


def _split_lines(text: str) -> list[str]:
    text = _ANSI.sub("", text)
    text = _SPECIAL_TOKENS.sub("\n", text)
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        stripped = line.strip()
        # "1. a {} 2. another {}" on one line: split at the inline numbers
        if re.match(r"^\(?1[.)]\s", stripped) and re.search(r"\s2[.)]\s", stripped):
            lines.extend(_INLINE_NUMBER.split(stripped))
        else:
            lines.append(line)
    return lines


def parse_proposals(
    text: str | None,
    *,
    max_words: int = 8,
    max_chars: int = 120,
    classnames: Sequence[str] = (),
    tried: Iterable[str] = (),
    max_proposals: int | None = None,
    max_lines: int = 60,
    require_placeholder: bool = True,
) -> ParseResult:
    """Parse one reply into template proposals (``{}`` normalized), one per line.

    ``max_words`` counts ``{}`` as a word. ``tried`` are templates already scored or proposed; a
    proposal equal to one of them under :func:`~catalyst_nb.llm.history.normalize_template` is dropped.
    A template without ``{}`` that mentions exactly one class name gets ``{}`` in its place (a repair,
    recorded in ``notes``); one that mentions a class next to ``{}`` is dropped. With
    ``require_placeholder`` (the default for LLM output, which is asked for ``{}``) a line without
    ``{}`` is dropped: in practice such lines are commentary, not templates.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words!r}")
    if max_proposals is not None and max_proposals < 0:
        raise ValueError(f"max_proposals must be >= 0 or None, got {max_proposals!r}")
    if not isinstance(text, str):
        text = ""
    tried_keys = {normalize_template(t) for t in tried}
    patterns = _class_patterns(classnames)
    proposals: list[str] = []
    seen: set[str] = set()
    rejected: list[RejectedLine] = []
    notes: list[str] = []

    lines = _split_lines(text)
    if len(lines) > max_lines:
        rest = [line for line in lines[max_lines:] if line.strip()]
        if rest:
            rejected.append(RejectedLine(rest[0][:200], "truncated", f"{len(rest)} more non-empty lines ignored"))
        lines = lines[:max_lines]

    for raw in lines:
        if not raw.strip():
            continue  # blank lines separate, they are not proposals
        shown = raw.strip()[:200]
        line = " ".join(_printable(raw).split())
        if not line or _FENCE.match(line) or not any(ch.isalnum() or ch in "{}[]<>" for ch in line):
            rejected.append(RejectedLine(shown, "junk"))
            continue
        markup = _MARKUP.search(_PLACEHOLDERS.sub(PLACEHOLDER, line))
        if markup:  # shown escaped it is harmless, but a template full of markup is not a prompt
            rejected.append(RejectedLine(shown, "markup", repr(markup.group()[:40])))
            continue
        line = line.replace("**", "").strip()
        line = _strip_decoration(line)
        line = _SCORE.sub("", line).strip()
        line = _strip_quotes(line)
        line = _PLACEHOLDERS.sub(PLACEHOLDER, line)
        head, colon, tail = line.partition(":")
        if colon and PLACEHOLDER not in head and PLACEHOLDER in tail and len(head.split()) <= 4:
            notes.append(f"dropped a label {head.strip()!r} before {tail.strip()!r}")
            line = _strip_quotes(tail.strip())
        parts = _COMMENT_SPLIT.split(line, maxsplit=1)
        if len(parts) == 2 and PLACEHOLDER in parts[0] and len(parts[1].split()) > 2:
            notes.append(f"dropped a comment after {parts[0]!r}: {parts[1][:60]!r}")
            line = _strip_quotes(parts[0].strip())
        line = " ".join(line.split())
        if not any(ch.isalpha() for ch in line):
            rejected.append(RejectedLine(shown, "no_words"))
            continue
        if line.endswith((":", "?")) or (PLACEHOLDER not in line and _PROSE_START.match(line)):
            rejected.append(RejectedLine(shown, "prose"))
            continue
        n_placeholders = line.count(PLACEHOLDER)
        problem = placeholder_problem(line)
        if problem is not None:
            rejected.append(RejectedLine(shown, "placeholder", problem))
            continue
        lowered = line.casefold()
        hits = [(name, m) for name, pat in patterns for m in [pat.search(lowered)] if m]
        if hits:
            if n_placeholders == 0 and len({name for name, _ in hits}) == 1:
                name, match = hits[0]
                line = line[: match.start()] + PLACEHOLDER + line[match.end() :]
                notes.append(f"class name {name!r} replaced by {PLACEHOLDER} in {line!r}")
            else:
                names = sorted({name for name, _ in hits})
                rejected.append(RejectedLine(shown, "class_name", ", ".join(repr(n) for n in names)))
                continue
        if require_placeholder and PLACEHOLDER not in line:
            rejected.append(RejectedLine(shown, "no_placeholder"))
            continue
        n_words = len(line.split())
        if n_words > max_words or len(line) > max_chars:
            detail = f"{n_words} words > {max_words}" if n_words > max_words else f"{len(line)} characters > {max_chars}"
            rejected.append(RejectedLine(shown, "too_long", detail))
            continue
        key = normalize_template(line)
        if key in seen:
            rejected.append(RejectedLine(shown, "repeated"))
            continue
        if key in tried_keys:
            rejected.append(RejectedLine(shown, "tried"))
            continue
        seen.add(key)
        if max_proposals is not None and len(proposals) >= max_proposals:
            rejected.append(RejectedLine(shown, "surplus", f"{max_proposals} requested"))
            continue
        proposals.append(line)
    return ParseResult(proposals=tuple(proposals), rejected=tuple(rejected), notes=tuple(notes))
