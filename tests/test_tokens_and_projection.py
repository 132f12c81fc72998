"""Tokenizer adapter and nearest-token projection (checked against brute force)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from catalyst_nb.projection import nearest_tokens


@pytest.mark.parametrize("text", ["a photo of a dog.", "Ankle   Boot", "t-shirt, a type of clothing"])
def test_wrap_reproduces_the_tokenizer(tiny_clip, text):
    tok = tiny_clip.tokenizer
    assert torch.equal(tok.wrap(tok.encode(text)), tok([text])[0])


def test_wrap_refuses_prompts_that_do_not_fit(tiny_clip):
    tok = tiny_clip.tokenizer
    with pytest.raises(ValueError, match="fit"):
        tok.wrap([tok.encode("a")[0]] * tok.context_length)


def test_decode_round_trips_plain_words(tiny_clip):
    tok = tiny_clip.tokenizer
    assert tok.decode(tok.encode("a photo of a")) == "a photo of a"


def test_markers_are_excluded(tiny_clip):
    tok = tiny_clip.tokenizer
    assert {tok.start_id, tok.end_id} <= set(tok.excluded_ids)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_nearest_is_brute_force_nearest(metric):
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(5000, 32, generator=gen)
    vectors = torch.randn(7, 32, generator=gen)
    vectors[0] = table[1234] + 1e-4  # an almost-exact hit must come back
    excluded = [1, 2, 3, 4999]
    got = nearest_tokens(vectors, table, metric=metric, k=5, exclude_ids=excluded, chunk_size=777)
    if metric == "l2":
        full = (vectors[:, None, :] - table[None, :, :]).norm(dim=-1)  # exact: no |a|^2-2ab+|b|^2 cancellation
        full[:, excluded] = float("inf")
        expected = full.topk(5, largest=False)
        assert torch.allclose(got.scores, expected.values, atol=1e-4)
    else:
        full = F.normalize(vectors, dim=-1) @ F.normalize(table, dim=-1).T
        full[:, excluded] = float("-inf")
        expected = full.topk(5)
        assert torch.allclose(got.scores, expected.values, atol=1e-5)
    assert torch.equal(got.ids, expected.indices)
    assert got.nearest[0] == 1234
    assert not set(got.ids.flatten().tolist()) & set(excluded)


def test_excluded_row_is_skipped_even_when_closest():
    table = torch.eye(4)
    got = nearest_tokens(table[:1], table, exclude_ids=[0])
    assert got.nearest[0] != 0


@pytest.mark.parametrize("kwargs", [{"metric": "dot"}, {"k": 0}, {"k": 10}])
def test_projection_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        nearest_tokens(torch.randn(2, 3), torch.randn(9, 3), **kwargs)


def test_kept_table_norms_follow_in_place_changes_and_new_tables():
    """The squared norms of the table are kept between calls; an in-place change or another table must
    not reuse them (brute force decides)."""
    g = torch.Generator().manual_seed(5)
    table, vectors = torch.randn(3000, 16, generator=g), torch.randn(6, 16, generator=g)

    def brute(t):
        return torch.cdist(vectors, t).topk(3, largest=False).indices

    assert torch.equal(nearest_tokens(vectors, table, k=3).ids, brute(table))
    table[: 1500].mul_(-0.25)  # same object, changed in place
    assert torch.equal(nearest_tokens(vectors, table, k=3).ids, brute(table))
    other = torch.randn(3000, 16, generator=g)
    assert torch.equal(nearest_tokens(vectors, other, k=3).ids, brute(other))
    assert torch.equal(nearest_tokens(vectors, table, k=3).ids, brute(table))


def test_tracker_gives_the_full_search_result_at_every_step_and_skips_most_searches(monkeypatch):
    """A context walking in small steps (and jumping now and then, as a restart does) is read by the
    tracker exactly as by a full search: same ids, same distances; the table changed in place and other
    excluded ids are noticed."""
    import catalyst_nb.projection as projection

    g = torch.Generator().manual_seed(11)
    table = torch.randn(4000, 24, generator=g)
    ctx = table[[5, 17, 300, 2900]].clone()
    searches = []
    real = projection.nearest_tokens
    monkeypatch.setattr(projection, "nearest_tokens", lambda *a, **kw: searches.append(1) or real(*a, **kw))
    tracker = projection.NearestTracker()
    excluded = (0, 1, 2)
    for step in range(300):
        ctx += 0.01 * torch.randn(ctx.shape, generator=g)
        if step in (100, 200):
            ctx = table[[40, 41, 42, 43]] + 0.3 * torch.randn(ctx.shape, generator=g)  # a restart
        if step == 150:
            table[:2000].mul_(1.001)  # changed in place
        if step == 250:
            excluded = (0, 1, 2, int(tracker.nearest(ctx, table, exclude_ids=excluded).ids[0, 0]))
        got = tracker.nearest(ctx, table, exclude_ids=excluded)
        want = real(ctx, table, k=1, exclude_ids=excluded)
        assert torch.equal(got.ids, want.ids), step
        assert torch.equal(got.scores, want.scores), step
    assert 5 <= len(searches) < 150  # mostly no search; every jump, table change and exclusion change searched
