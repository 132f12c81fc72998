"""Every public name resolves, and importing the LLM layer does not import torch."""
from __future__ import annotations

import subprocess
import sys

import catalyst_nb


def test_every_exported_name_resolves():
    for name in catalyst_nb.__all__:
        assert getattr(catalyst_nb, name) is not None, name


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
