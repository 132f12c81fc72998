"""Work done once (embed_dim, open_clip config registration) and one rule for every cache folder."""
from __future__ import annotations

from pathlib import Path

import torch


def test_embed_dim_runs_the_text_tower_once():
    from catalyst_nb.backbone import load_clip

    clip = load_clip("tiny-native", None, device="cpu")
    calls = []
    original = clip.model.encode_text

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    clip.model.encode_text = counting
    assert clip.embed_dim == 64 and clip.embed_dim == 64 and clip.embed_dim == 64
    assert len(calls) == 1


def test_package_model_configs_are_registered_with_open_clip_once(monkeypatch):
    import open_clip

    from catalyst_nb.backbone import load_clip

    load_clip("tiny-native", None, device="cpu")  # registered by now, whatever ran before
    calls = []
    real = open_clip.add_model_config
    monkeypatch.setattr(open_clip, "add_model_config", lambda path: (calls.append(path), real(path)))
    load_clip("tiny-native", None, device="cpu")
    load_clip("tiny-hf", None, device="cpu")
    assert calls == []
    from open_clip import factory

    paths = [str(p) for p in factory._MODEL_CONFIG_PATHS]
    assert len(paths) == len(set(paths))


def test_every_cache_follows_one_rule(monkeypatch, tmp_path):
    from catalyst_nb.features import default_cache_dir
    from catalyst_nb.llm.launcher import cache_dir
    from catalyst_nb.paths import cache_root

    monkeypatch.delenv("CATALYST_NB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "catalyst_nb"
    assert default_cache_dir() == tmp_path / "xdg" / "catalyst_nb" / "features"
    assert cache_dir() == cache_root()
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "catalyst_nb" / "features"
    monkeypatch.setenv("CATALYST_NB_CACHE", str(tmp_path / "own"))
    assert default_cache_dir() == tmp_path / "own" / "features" and cache_dir() == tmp_path / "own"
