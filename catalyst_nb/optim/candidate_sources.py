"""Where a round's candidate templates come from: projections, one-token variants, and the pool.

The paper takes up to K distinct projections of the soft context during a stage.  On a small model a
short stage often projects to one template only (the context moves less than the gap between tokens),
so the default preset fills the remaining slots from two more sources: variants of the current projection
(one slot swapped for its 2nd..k-th nearest token) and the pool of the best templates scored in earlier
rounds (the paper's figure keeps such a prompt pool).
"""
from __future__ import annotations

from typing import Iterable, Sequence

from catalyst_nb.candidates import Candidate, Source, rank_candidates
from catalyst_nb.prompt_learner import PromptLearner
from catalyst_nb.templates import normalize_template
from catalyst_nb.trajectory import Trajectory

__all__ = ["gather_candidates", "projection_templates", "variant_templates"]


def projection_templates(trajectory: Trajectory, stage: int) -> list[str]:
    """Distinct projected templates of a stage, the most recent first."""
    return list(reversed(trajectory.distinct_templates(stage)))


def variant_templates(learner: PromptLearner, *, k: int, metric: str = "l2") -> list[str]:
    """Templates that differ from the current projection in one slot (its 2nd..k-th nearest token).

    Ordered by how close the swapped-in token is (rank 2 of every slot first, then rank 3, ...).
    """
    projected = learner.to_text(metric=metric, k=k)
    near = projected.topk[0]
    base = list(projected.token_ids[0])
    out: list[str] = []
    for rank in range(1, k):
        for slot in range(len(base)):
            ids = list(base)
            ids[slot] = int(near.ids[slot, rank])
            out.append(learner.loaded_template(ids))
    return out


def gather_candidates(
    *,
    round_index: int,
    k: int,
    sources: Sequence[str],
    projections: Iterable[str],
    variants: Iterable[str],
    pool: Iterable[Candidate],
) -> list[Candidate]:
    """Up to ``k`` distinct candidates: the pool's best fill up to half the slots (when the pool is a
    source), then projections, then variants, in the order ``sources`` names them."""
    seen: set[str] = set()
    out: list[Candidate] = []
    counters = {s: 0 for s in Source}

    def add(template: str, source: Source) -> None:
        key = normalize_template(template)
        if key in seen or len(out) >= k:
            return
        seen.add(key)
        prefix = {Source.PROJECTION: "p", Source.VARIANT: "v", Source.POOL: "k"}[source]
        out.append(Candidate(id=f"{prefix}{round_index}-{counters[source]}", template=template, source=source,
                             round=round_index))
        counters[source] += 1

    ranked_pool = rank_candidates(pool)
    pool_slots = k // 2 if len(sources) > 1 else k
    by_source = {
        "projection": [(t, Source.PROJECTION) for t in projections],
        "variant": [(t, Source.VARIANT) for t in variants],
        "pool": [(c.template, Source.POOL) for c in ranked_pool],
    }
    if "pool" in sources:
        for template, source in by_source["pool"][:pool_slots]:
            add(template, source)
    for name in sources:
        for template, source in by_source[name]:
            add(template, source)
    return out
