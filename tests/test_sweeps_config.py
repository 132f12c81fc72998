"""Sweep files: what a valid one expands to, and every kind of bad input refused with its name."""
from __future__ import annotations

import pytest

from catalyst_nb.sweeps import SweepConfig, SweepConfigError, expand, load_sweep_config


def _config(**changes):
    data = {
        "sweep": {"name": "t", "collapse_margin": 0.1},
        "defaults": {"steps": 4, "llm": "none"},
        "grid": {"data": ["embedded"], "shots": [1, 4], "seed": [1, 2]},
        "methods": {"zero-shot": {"method": "zero-shot"}, "catalyst (paper)": {"method": "catalyst", "preset": "paper", "llm": "local"}},
    }
    for key, value in changes.items():
        top, _, sub = key.partition("__")
        if sub:
            if value is None:
                data[top].pop(sub)
            else:
                data[top][sub] = value
        elif value is None:
            data.pop(top)
        else:
            data[top] = value
    return data


def test_grid_expands_methods_then_axes_with_readable_stable_ids():
    config = SweepConfig.from_dict(_config())
    cells = expand(config)
    assert len(cells) == 2 * 2 * 2
    assert [c.cell_id for c in cells[:4]] == [
        "zero-shot__embedded__1shot__seed1", "zero-shot__embedded__1shot__seed2",
        "zero-shot__embedded__4shot__seed1", "zero-shot__embedded__4shot__seed2",
    ]
    paper = cells[4]
    assert paper.cell_id == "catalyst-paper__embedded__1shot__seed1"
    assert paper.settings == {"steps": 4, "llm": "local", "method": "catalyst", "preset": "paper",
                              "data": "embedded", "shots": 1, "seed": 1}
    # adding a seed keeps every existing cell's id (and so its folder and finished result)
    more = expand(SweepConfig.from_dict(_config(grid__seed=[1, 2, 3])))
    assert {c.cell_id for c in cells} < {c.cell_id for c in more}


def test_extra_axes_and_base_to_new_appear_in_ids():
    config = SweepConfig.from_dict(_config(grid__base_to_new=[False, True], grid__restart=["best", "probe"]))
    ids = [c.cell_id for c in expand(config)]
    assert "catalyst-paper__embedded__b2n__restart-probe__4shot__seed2" in ids
    assert "zero-shot__embedded__all__restart-best__1shot__seed1" in ids
    assert config.base_to_new and not SweepConfig.from_dict(_config()).base_to_new


def test_hash_ignores_key_order_and_name_but_not_settings():
    a = SweepConfig.from_dict(_config())
    reordered = _config()
    reordered["defaults"] = {"llm": "none", "steps": 4}
    reordered["sweep"]["name"] = "other name"
    assert SweepConfig.from_dict(reordered).config_hash() == a.config_hash()
    assert SweepConfig.from_dict(_config(defaults__steps=5)).config_hash() != a.config_hash()


@pytest.mark.parametrize("changes, message", [
    ({"extra": {}}, "unknown key.*'extra'"),
    ({"defaults__stepz": 3}, r"unknown key.*\[defaults\].*'stepz'"),
    ({"sweep__colour": "red"}, r"unknown key.*\[sweep\].*'colour'"),
    ({"grid": None}, "grid is empty"),
    ({"grid": {}}, "grid is empty"),
    ({"grid__seed": []}, "seed is an empty list"),
    ({"grid__seed": None}, "needs the axes seed"),
    ({"grid__shots": 4}, "shots must be a list"),
    ({"grid__shots": [1, 1]}, "lists a value twice"),
    ({"grid__method": ["coop"]}, r"unknown key.*\[grid\].*'method'"),
    ({"methods": {}}, "no methods"),
    ({"methods": {"x": {"preset": "paper"}}}, "needs method ="),
    ({"methods": {"x": {"method": "telepathy"}}}, "cell x__embedded__1shot__seed1: .*telepathy"),
    ({"methods": {"x": {"method": "coop", "shots": 2}}}, "also a \\[grid\\] axis"),
    ({"defaults__shots": 3}, "both in \\[defaults\\] and as a \\[grid\\] axis"),
    ({"defaults__method": "coop"}, "cannot set 'method'"),
    ({"sweep__collapse_margin": 2}, "collapse_margin"),
    ({"methods": {"A b": {"method": "coop"}, "a-b": {"method": "coop"}}}, "share the folder"),
])
def test_bad_sweep_files_are_refused_naming_the_problem(changes, message):
    with pytest.raises(SweepConfigError, match=message):
        SweepConfig.from_dict(_config(**changes))


def test_loading_files(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('[grid]\nshots = [2]\nseed = [1]\n[methods.coop]\nmethod = "coop"\n')
    config = load_sweep_config(good)
    assert config.name == "mine" and [c.cell_id for c in expand(config)] == ["coop__2shot__seed1"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid\n")
    with pytest.raises(SweepConfigError, match="not valid TOML"):
        load_sweep_config(bad)
    with pytest.raises(SweepConfigError, match="not found"):
        load_sweep_config(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", ["methods.toml", "methods_smoke.toml", "methods_quick.toml", "methods_quick_b2n.toml", "methods_chat.toml",
                                  "methods_b2n_16shot.toml", "methods_paired_16shot.toml"])
def test_shipped_sweep_files_are_valid(name):
    from pathlib import Path

    config = load_sweep_config(Path(__file__).resolve().parents[1] / "benchmarks" / name)
    labels = [label for label, _ in config.methods]
    assert "coop" in labels and config.baseline == "coop"  # every shipped table pairs its methods with CoOp
    assert len(expand(config)) >= 2


def test_importing_sweeps_imports_neither_torch_nor_ray_and_reading_a_file_no_ray():
    import subprocess
    import sys

    code = ("import sys, catalyst_nb.sweeps as s; from pathlib import Path; print('torch' in sys.modules, "
            "'ray' in sys.modules); s.load_sweep_config(Path('benchmarks/methods.toml')); print('ray' in sys.modules)")
    from pathlib import Path

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "False", "False"]


@pytest.mark.parametrize("name", ["restart_rules.toml", "restart_rules_16shot.toml"])
def test_restart_rule_files_pair_every_rule_with_coop_of_the_same_context(name):
    """These files are paired by context size (``benchmarks/paired_vs_coop.py``: "<rule> n<K>" against
    "coop n<K>"), so each rule's context must match its CoOp partner's exactly, and every rule is named."""
    from pathlib import Path

    config = load_sweep_config(Path(__file__).resolve().parents[1] / "benchmarks" / name)
    methods = dict(config.methods)
    rules = [label for label in methods if not label.startswith("coop ")]
    assert rules
    for label in rules:
        rule, size = label.rsplit(" n", 1)
        partner = methods[f"coop n{size}"]
        assert methods[label]["n_ctx"] == partner["n_ctx"] == int(size)
        assert methods[label]["ctx_init"] == partner["ctx_init"]
        assert methods[label]["restart"] == rule.split("-")[0]
        assert partner["method"] == "coop" and methods[label]["method"] == "catalyst"
