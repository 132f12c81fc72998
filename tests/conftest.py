"""Shared test set-up: offline, CPU, a private cache, and the small random-weight models loaded once."""
from __future__ import annotations

import os

# Before anything imports huggingface_hub: a missing weight must fail in seconds, not retry the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Keep feature caches of the test run out of the user's home."""
    os.environ["CATALYST_NB_CACHE"] = str(tmp_path_factory.mktemp("catalyst_cache"))
    yield


def _seeded_random_model(name: str):
    """Random weights drawn from a fixed seed, so results do not depend on which tests ran first."""
    from catalyst_nb.backbone import load_clip

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return load_clip(name, None, device="cpu")


@pytest.fixture(scope="session")
def tiny_native():
    return _seeded_random_model("tiny-native")


@pytest.fixture(scope="session")
def tiny_hf():
    return _seeded_random_model("tiny-hf")


@pytest.fixture(params=["native", "hf"], scope="session")
def tiny_clip(request, tiny_native, tiny_hf):
    """Both text-tower kinds open_clip supports, as small random-weight models."""
    return tiny_native if request.param == "native" else tiny_hf
