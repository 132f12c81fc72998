"""Shared test set-up: offline, CPU, a private cache, and the small random-weight models loaded once."""
from __future__ import annotations

import os

# Before anything imports huggingface_hub: a missing weight must fail in seconds, not retry the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

# One compute thread everywhere, chosen here rather than by how idle the machine is when a test starts: float
# sums split over another number of threads round differently, and several tests compare a run in this
# process with one in a subprocess (which inherits this variable) or with a resumed run bit for bit.
# Tests of the thread policy itself remove the variable explicitly.
os.environ["CATALYST_NB_THREADS"] = "1"
torch.set_num_threads(1)


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


@pytest.fixture(scope="session")
def tiny_train_2shot(tiny_native):
    """2-shot embedded Fashion-MNIST training features on the native test model (no cache, no bar)."""
    from catalyst_nb.data import few_shot, load_embedded_fashion_mnist
    from catalyst_nb.features import extract_features

    ds = few_shot(load_embedded_fashion_mnist("train"), shots=2, seed=1)
    return extract_features(tiny_native, ds, cache_dir=False, progress=False)


@pytest.fixture(scope="session")
def tiny_splits(tiny_native, tiny_train_2shot):
    """(train, scoring, test) features for catalyst tests: 2-shot train, 4-shot val and test subsets."""
    from catalyst_nb.data import few_shot, load_embedded_fashion_mnist
    from catalyst_nb.features import extract_features

    kw = dict(cache_dir=False, progress=False)
    score = extract_features(tiny_native, few_shot(load_embedded_fashion_mnist("val"), shots=4, seed=1), **kw)
    test = extract_features(tiny_native, few_shot(load_embedded_fashion_mnist("test"), shots=4, seed=1), **kw)
    return tiny_train_2shot, score, test
