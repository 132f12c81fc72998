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


def _source_files():
    import ast

    root = Path(__file__).resolve().parents[1] / "catalyst_nb"
    for path in sorted(root.rglob("*.py")):
        yield path.relative_to(root).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def test_one_nan_codec_one_restart_policy_list_one_stage_end_reader():
    """NaN as JSON text, the restart policies and the stage-end payload's keys each live in one module."""
    import ast

    nan_text, policy_lists, stage_end_reads = set(), set(), set()
    for name, tree in _source_files():
        float_args = {id(a) for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "float"
                      for a in n.args}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in ("nan", "inf", "-inf") and id(node) not in float_args:
                nan_text.add(name)
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if {"first", "best"} <= values:
                    policy_lists.add(name)
            key = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                key = node.slice.value
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get" and node.args
                  and isinstance(node.args[0], ast.Constant)):
                key = node.args[0].value
            if key in ("eval", "scoring"):
                stage_end_reads.add(name)
    assert nan_text == {"json_codec.py"}
    assert policy_lists == {"optim/catalyst_config.py"}
    assert stage_end_reads == {"optim/events.py"}


def test_one_atomic_write():
    """Files are replaced only through state_io; the exceptions stream a model file of gigabytes through a
    checksum (the Gemma launcher, the chat model) or rename a folder (the Ray executor)."""
    import ast

    renames = set()
    for name, tree in _source_files():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.replace", "os.rename"):
                renames.add(name)
    assert renames == {"state_io.py", "llm/launcher.py", "llm/chat_model.py", "sweeps/ray_executor.py"}
