"""The batched completions server's request parsing and choice seeds (no model needed)."""
from __future__ import annotations

import pytest

from catalyst_nb.llm.batch_decoding import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, choice_seed
from catalyst_nb.llm.batch_server import MAX_N, RequestError, parse_completion_request


def test_a_full_request_and_the_defaults_of_an_empty_one():
    prompt, n, params = parse_completion_request({
        "model": "anything", "prompt": ["Captions:\n-"], "n": 8, "seed": 12, "temperature": 1,
        "top_p": 0.9, "max_tokens": 24, "stop": "\n", "user": "ignored",
    })
    assert (prompt, n) == ("Captions:\n-", 8)
    assert (params.seed, params.temperature, params.top_p, params.max_tokens, params.stop) == (12, 1.0, 0.9, 24, ("\n",))
    _, n, params = parse_completion_request({"prompt": "x"})
    assert n == 1 and params.seed is None and params.stop == ()
    assert (params.max_tokens, params.temperature, params.top_p) == (DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P)
    assert parse_completion_request({"prompt": "x", "stop": ["a", "b"]})[2].stop == ("a", "b")


@pytest.mark.parametrize("body, words", [
    ([], "JSON object"),
    ({"prompt": ""}, "non-empty"),
    ({"prompt": ["a", "b"]}, "one prompt"),
    ({"prompt": "x", "stream": True}, "streaming"),
    ({"prompt": "x", "logprobs": 2}, "logprobs"),
    ({"prompt": "x", "n": MAX_N + 1}, "n must be"),
    ({"prompt": "x", "n": 2.5}, "n must be an integer"),
    ({"prompt": "x", "n": True}, "n must be an integer"),
    ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "x", "temperature": 2.5}, "temperature"),
    ({"prompt": "x", "top_p": 0}, "top_p"),
    ({"prompt": "x", "seed": "7"}, "seed must be an integer"),
    ({"prompt": "x", "stop": ["a", 1]}, "stop"),
])
def test_what_the_server_does_not_do_is_refused_with_the_reason(body, words):
    with pytest.raises(RequestError, match=words):
        parse_completion_request(body)


def test_choice_seeds_start_at_the_request_seed_and_are_distinct_and_stable():
    assert choice_seed(12345, 0) == 12345  # n=1 is an ordinary seeded call
    seeds = [choice_seed(12345, i) for i in range(64)]
    assert len(set(seeds)) == 64 and all(0 <= s < 2**32 for s in seeds)
    assert seeds == [choice_seed(12345, i) for i in range(64)]
    assert choice_seed(12346, 1) != choice_seed(12345, 1)
    assert choice_seed(2**31 - 1, 5) == 1186744740  # a hash of fixed text: the same on every machine
