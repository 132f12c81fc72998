"""What a sweep worker sets up once for all its cells: its threads and one load per model."""
from __future__ import annotations

import os

import pytest
import torch

from catalyst_nb import backbone
from catalyst_nb.backbone import keep_loaded_models, load_clip
from catalyst_nb.sweeps.local_executor import _models_kept_here, start_worker
from catalyst_nb.threads import THREADS_ENV


@pytest.fixture
def forget_models():
    yield
    keep_loaded_models(False)


def test_kept_models_are_loaded_once_random_weights_every_time(forget_models):
    keep_loaded_models()
    first = load_clip("catalyst-fmnist", "embedded", device="cpu")
    assert load_clip("catalyst-fmnist", "embedded", device="cpu") is first
    assert load_clip("tiny-native", None, device="cpu") is not load_clip("tiny-native", None, device="cpu")
    keep_loaded_models(False)
    assert load_clip("catalyst-fmnist", "embedded", device="cpu") is not first


def test_a_worker_fixes_its_threads_and_keeps_its_models(monkeypatch, forget_models):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    before = torch.get_num_threads()
    try:
        start_worker(1)
        assert torch.get_num_threads() == 1 and os.environ[THREADS_ENV] == "1"
        assert backbone._KEPT == {}
    finally:
        torch.set_num_threads(before)


def test_cells_run_here_keep_models_only_for_the_sweep(forget_models):
    with _models_kept_here():
        assert backbone._KEPT == {}
    assert backbone._KEPT is None
    keep_loaded_models()
    with _models_kept_here():
        pass
    assert backbone._KEPT == {}  # a caller that keeps models itself keeps them
