"""The sampling seed of one LLM call, derived from (run seed, round, sample) by a hash.

A seed of ``run_seed + round * samples + sample`` makes neighbouring runs share draws: run 2's first
round would send seven of the eight seeds of run 1's first round, and a server answers the same request
with the same seed identically, so the runs would not be independent samples of the method.  A hash of
the three numbers gives every call its own seed; two different (run seed, round, sample) triples
collide only by chance (2**-31 per pair), and a rerun with the same run seed repeats every draw.
"""
from __future__ import annotations

import hashlib

__all__ = ["sampling_seed", "SEED_BITS"]

# llama.cpp and most OpenAI-compatible servers take a signed 32-bit seed; 31 bits keep it non-negative.
SEED_BITS = 31


def sampling_seed(run_seed: int, round_index: int, sample: int) -> int:
    """A non-negative 31-bit seed from blake2b over the three integers (stable across Python versions)."""
    for name, value in (("run_seed", run_seed), ("round_index", round_index), ("sample", sample)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
    digest = hashlib.blake2b(f"catalyst-llm-seed:{run_seed}:{round_index}:{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << SEED_BITS) - 1)
