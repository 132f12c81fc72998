"""The conda environment for GPU users names the same dependencies as pyproject.toml."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names for the pip packages that come from conda in environment.yml
CONDA_NAMES = {"torch": "pytorch-gpu", "torchvision": "torchvision"}


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)$", requirement)
    assert match, requirement
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def _pyproject():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    return dict(_split(r) for r in project["dependencies"]), dict(
        _split(r) for r in project["optional-dependencies"]["dev"]
    )


def _environment():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                if not line.startswith("-e"):
                    name, spec = _split(line)
                    pip[name] = spec
        else:
            name, spec = _split(dep.replace("=", "==", 1) if re.match(r"^[\w-]+=[^=<>]", dep) else dep)
            conda[name] = spec
    return conda, pip


def test_environment_names_the_same_dependencies_as_pyproject():
    runtime, dev = _pyproject()
    conda, pip = _environment()
    for name, spec in runtime.items():
        if name in CONDA_NAMES:
            assert conda.get(CONDA_NAMES[name]) == spec, f"{name}{spec} vs conda {CONDA_NAMES[name]}"
        else:
            assert pip.get(name) == spec, f"{name}{spec} missing or different in environment.yml"
    for name, spec in dev.items():
        assert pip.get(name) == spec, f"dev dependency {name}{spec} missing or different in environment.yml"
    extra = set(pip) - set(runtime) - set(dev)
    assert not extra, f"environment.yml installs {extra} that pyproject.toml does not declare"


def test_environment_installs_this_package_and_a_cuda_torch():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_part = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_part
    assert any(str(d).startswith("pytorch-gpu") for d in env["dependencies"])


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci
    assert "make demo" in readme
