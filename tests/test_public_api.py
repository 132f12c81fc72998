"""Every public name resolves, and importing the LLM layer does not import torch."""
from __future__ import annotations

import subprocess
import sys

import catalyst_nb


def test_every_exported_name_resolves():
    for name in catalyst_nb.__all__:
        assert getattr(catalyst_nb, name) is not None, name


def test_the_top_level_api_is_small_and_its_docstring_names_the_main_objects():
    assert len(catalyst_nb.__all__) <= 30, sorted(catalyst_nb.__all__)
    for name in ("Experiment", "RunConfig", "GradientPromptOptimizer", "LLMPromptOptimizer", "CatalystOptimizer"):
        assert name in catalyst_nb.__all__ and name in catalyst_nb.__doc__, name
    assert "whole API" not in catalyst_nb.__doc__  # the subpackages hold the rest


def test_names_that_left_the_top_level_stay_reachable_in_their_subpackages():
    import catalyst_nb.data
    import catalyst_nb.llm
    import catalyst_nb.optim
    import catalyst_nb.runs

    assert catalyst_nb.optim.RoundEvent and catalyst_nb.optim.CatalystConfig
    assert catalyst_nb.llm.RecordingClient and catalyst_nb.llm.OpenAICompletionClient
    assert catalyst_nb.data.split_base_new and catalyst_nb.runs.RunFolder
    from catalyst_nb.experiment import execute

    assert callable(execute)


def test_unknown_attribute_is_an_attribute_error():
    try:
        catalyst_nb.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_llm_layer_imports_without_torch():
    code = "import sys, catalyst_nb.llm; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _names_announced_to_type_checkers() -> set[str]:
    """Every name the ``if TYPE_CHECKING:`` block of ``__init__.py`` imports (star imports expanded)."""
    import ast
    import importlib
    from pathlib import Path

    tree = ast.parse(Path(catalyst_nb.__file__).read_text())
    names: set[str] = set()
    blocks = [n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING"]
    assert blocks, "no TYPE_CHECKING block found"
    for node in ast.walk(blocks[0]):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    names |= set(importlib.import_module(node.module).__all__)
                else:
                    names.add(alias.asname or alias.name)
    return names


def test_every_name_announced_to_type_checkers_resolves_at_runtime():
    announced = _names_announced_to_type_checkers()
    missing = sorted(name for name in announced if not hasattr(catalyst_nb, name))
    assert not missing, f"announced to type checkers but AttributeError at runtime: {missing}"
    assert announced == set(catalyst_nb.__all__)


def test_dead_code_is_gone():
    import catalyst_nb.llm.client as client
    from catalyst_nb.trajectory import Trajectory

    assert not hasattr(client, "messages_of")  # had no caller
    assert not hasattr(Trajectory(), "snapshots")  # was never filled
