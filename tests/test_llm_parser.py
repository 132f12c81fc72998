"""The reply parser against the kinds of output real models produce."""

from __future__ import annotations

import pytest

from catalyst_nb.llm import parse_proposals
from catalyst_nb.llm.parser import REASONS

FMNIST = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def codes(result):
    return [r.code for r in result.rejected]


def test_plain_lines_are_kept_in_order():
    r = parse_proposals("a photo of a {}.\na sketch of the {}\n")
    assert r.proposals == ("a photo of a {}.", "a sketch of the {}")
    assert r.rejected == ()


@pytest.mark.parametrize(
    "line",
    [
        "1. a photo of a {}.",
        "1) a photo of a {}.",
        "(1) a photo of a {}.",
        "- a photo of a {}.",
        "* a photo of a {}.",
        "• a photo of a {}.",
        '"a photo of a {}."',
        "“a photo of a {}.”",
        "'a photo of a {}.'",
        "`a photo of a {}.`",
        "**a photo of a {}.**",
        '1. "a photo of a {}."',
        "- Template 1: a photo of a {}.",
        "Template: \"a photo of a {}.\"",
        "2. a photo of a {}. (loss 0.81, accuracy 72%)",
        "a photo of a {}. - loss: 0.5",
        "a photo of a {}. with loss of 1.45",
        "   a   photo of  a {}.   ",
        "a photo of a {class}.",
        "a photo of a [CLASS].",
        "a photo of a <class>.",
        "a photo of a { }.",
        "a photo of a {{}}.",
    ],
)
def test_decoration_is_stripped(line):
    r = parse_proposals(line)
    assert r.proposals == ("a photo of a {}.",), r.rejected


def test_prose_before_and_after_is_dropped_with_reason():
    reply = (
        "Sure! Here are three new templates that should work better:\n\n"
        "1. a close-up photo of a {}.\n2. a product photo of the {}.\n3. a studio shot of a {}.\n\n"
        "These templates emphasize the object. Let me know if you need more!"
    )
    r = parse_proposals(reply)
    assert r.proposals == ("a close-up photo of a {}.", "a product photo of the {}.", "a studio shot of a {}.")
    assert codes(r) == ["prose", "prose"]
    assert all(rej.reason.startswith(REASONS["prose"]) for rej in r.rejected)


def test_repeated_and_empty_lines():
    r = parse_proposals("a {} photo\n\n\n   \na {} photo\nA {} photo.\n")
    assert r.proposals == ("a {} photo",)
    assert codes(r) == ["repeated", "repeated"]


def test_templates_already_tried_are_dropped():
    tried = ["a photo of a {}.", "itap of a"]
    r = parse_proposals("A photo of a {}\nitap of a {}.\na new photo of a {}", tried=tried)
    assert r.proposals == ("a new photo of a {}",)
    assert codes(r) == ["tried", "tried"]


def test_over_long_lines_and_text():
    long_line = "a very detailed and carefully lit studio photograph of a single {} on black"
    r = parse_proposals(long_line + "\na {} " + "x" * 200, max_words=8)
    assert r.proposals == ()
    assert codes(r) == ["too_long", "too_long"]
    assert "words > 8" in r.rejected[0].reason
    assert "characters" in r.rejected[1].reason


def test_word_limit_is_inclusive_and_counts_the_placeholder():
    eight = "one two three four five six seven {}"
    nine = "one two three four five six seven eight {}"
    assert parse_proposals(eight, max_words=8).proposals == (eight,)
    assert parse_proposals(nine, max_words=8).proposals == ()


def test_class_name_replaced_when_no_placeholder_else_rejected():
    r = parse_proposals("a photo of a sneaker.\na photo of a {} next to a shirt\na grainy picture of the Ankle boot", classnames=FMNIST)
    assert r.proposals == ("a photo of a {}.", "a grainy picture of the {}")
    assert codes(r) == ["class_name"]
    assert "'Shirt'" in r.rejected[0].reason
    assert len(r.notes) == 2 and "Sneaker" in r.notes[0]


def test_class_name_matching_respects_word_boundaries():
    # "t-shirt" is the class T-shirt/top, not Shirt; "bagged" and "coating" are not classes
    r = parse_proposals("a bagged {} with coating\na {} like a t-shirt", classnames=FMNIST)
    assert r.proposals == ("a bagged {} with coating",)
    assert "T-shirt/top" in r.rejected[0].reason and "'Shirt'" not in r.rejected[0].reason


def test_placeholder_problems():
    r = parse_proposals("a {} and a {}\na photo of a {{}.\na photo of {x}", require_placeholder=False)
    assert r.proposals == ()
    assert codes(r) == ["placeholder", "placeholder", "placeholder"]


def test_missing_placeholder_is_dropped_unless_allowed():
    r = parse_proposals('"c" - color (e.g. black, red)\na photo of a')
    assert r.proposals == ()
    assert codes(r) == ["no_placeholder", "no_placeholder"]
    assert parse_proposals("a photo of a", require_placeholder=False).proposals == ("a photo of a",)


def test_non_printable_junk_is_removed():
    reply = "\x00\x1b[31ma photo\u200b of a {}.\x1b[0m\x07\n\x00\x01\x02\n<end_of_turn>\n<|im_end|>a sketch of a {}</s>"
    r = parse_proposals(reply)
    assert r.proposals == ("a photo of a {}.", "a sketch of a {}")
    assert codes(r) == ["junk"]


def test_markdown_fences_and_headings():
    r = parse_proposals("```\n# New templates\n- a photo of a {}\n```")
    assert r.proposals == ("a photo of a {}",)
    assert "junk" in codes(r)


def test_inline_numbered_list_is_split():
    r = parse_proposals("1. a photo of a {}. 2. a sketch of a {}. 3. a drawing of a {}.")
    assert r.proposals == ("a photo of a {}.", "a sketch of a {}.", "a drawing of a {}.")


def test_trailing_comment_after_dash_is_dropped_and_noted():
    r = parse_proposals("a studio photo of a {} - this stresses the clean background")
    assert r.proposals == ("a studio photo of a {}",)
    assert r.notes and "comment" in r.notes[0]


def test_a_short_label_before_a_colon_is_dropped():
    r = parse_proposals('1. **Studio shot:** "a studio shot of a {}"\nContext: the {} worn by a model')
    assert r.proposals == ("a studio shot of a {}", "the {} worn by a model")
    assert len(r.notes) == 2 and "Studio shot" in r.notes[0]


def test_surplus_beyond_max_proposals():
    r = parse_proposals("a {} one\na {} two\na {} three", max_proposals=2)
    assert r.proposals == ("a {} one", "a {} two")
    assert codes(r) == ["surplus"]


@pytest.mark.parametrize("text", ["", None, "\n\n\n", "Sure, here you go:", "   \x00   ", 12345])
def test_nothing_valid_is_a_normal_result(text):
    r = parse_proposals(text)
    assert r.proposals == ()
    assert not r


def test_huge_reply_is_truncated_with_a_record():
    reply = "\n".join(f"a {{}} variant {i}" for i in range(500))
    r = parse_proposals(reply, max_lines=10)
    assert len(r.proposals) == 10
    assert codes(r) == ["truncated"]
    assert "490 more" in r.rejected[0].reason


def test_real_gemma_style_continuation():
    # shape of an actual Gemma 3 270M continuation of the completion meta-prompt
    reply = (
        " an old photo of a {}. (loss 0.85, accuracy 69%)\n2. a green shirt {}. (loss 0.71, accuracy 63%)\n"
        "3. a low resolution photo of the {}, a type of clothing, with loss of 1.45"
    )
    r = parse_proposals(reply, classnames=FMNIST, tried=["a low resolution photo of the {}."])
    assert r.proposals == ("an old photo of a {}.",)
    assert codes(r) == ["class_name", "too_long"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_words"):
        parse_proposals("a {}", max_words=0)
    with pytest.raises(ValueError, match="max_proposals"):
        parse_proposals("a {}", max_proposals=-1)


def test_lines_of_only_quotes_and_markup_never_raise():
    """Found on real Gemma output: a line that is nothing but nested quotes/markup once crashed the parser."""
    import random

    rng = random.Random(0)
    alphabet = "\"“”'‘’«»`*_ -.1)"
    lines = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(3000)]
    lines += ['"*"', "*'*", "_*_", '**"**', "`*`", "- *'*"]
    result = parse_proposals("\n".join(lines), max_words=8, classnames=["shirt"], tried=[], max_proposals=3)
    assert result.proposals == () or all(p.strip() for p in result.proposals)
    assert result.rejected  # every line was dropped with a reason, none raised


@pytest.mark.parametrize("line, shown", [
    ("<script>alert(1)</script> a {} photo", "'<script>'"),
    ("<p>a photo of a {}</p>", "'<p>'"),
    ('a {} <img src=x onerror="alert(1)"/>', "'<img src=x onerror=\"alert(1)\"/>'"),
    ("a {} &lt;b&gt; photo", "'&lt;'"),
    ("<!-- a {} -->", "'<!--'"),
    ("- <b>a bold {}</b>", "'<b>'"),
])
def test_markup_lines_are_dropped_with_a_reason(line, shown):
    r = parse_proposals(f"a photo of a {{}}\n{line}")
    assert r.proposals == ("a photo of a {}",)
    assert codes(r) == ["markup"] and r.rejected[0].reason == f"{REASONS['markup']}: {shown}"


def test_a_large_html_reply_gives_no_proposals_and_placeholder_spellings_are_not_markup():
    page = "<html><body>\n" + "<div class='x'>a {} photo</div>\n" * 200 + "<script>alert(1)</script> a {} photo\n"
    r = parse_proposals(page + "</body></html>", max_lines=1000)
    assert r.proposals == () and set(codes(r)) == {"markup"}
    kept = parse_proposals("a photo of a <class>\na {} < 3 cm\na {} -> b")
    assert kept.proposals == ("a photo of a {}", "a {} < 3 cm", "a {} -> b")
