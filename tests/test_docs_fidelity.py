"""What the README and docstrings say about CoOp matches what the code and the benchmark do."""
from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_readme_coop_row_states_the_context_length_that_was_run(tiny_hf):
    from catalyst_nb.backbone import _package_config  # the benchmark's model and its ctx_init default

    row = next(line for line in README.splitlines() if line.startswith("| 16-shot CoOp"))
    n_tokens = len(tiny_hf.tokenizer.encode("a photo of a"))  # same MiniLM vocabulary as catalyst-fmnist
    assert _package_config("catalyst-fmnist")["text_cfg"]["hf_tokenizer_name"] == \
        _package_config("tiny-hf")["text_cfg"]["hf_tokenizer_name"]
    assert f"{n_tokens} context tokens" in row and "n_ctx 16" not in row


def test_readme_epoch_note_follows_coops_published_runs():
    flat = _flat(README)
    assert "50 epochs for 1–2 shots, 100 for 4 shots and 200 for 8–16 shots" in flat
    assert "CoOp defaults" not in flat
    assert "--schedule epoch --drop-last true" in flat and 'schedule="epoch", drop_last=True' in flat


def test_schedule_difference_is_documented_where_the_schedule_is_defined():
    import catalyst_nb.optim.gradient as gradient

    doc = _flat(gradient.__doc__)
    assert "steps its scheduler once per *epoch*" in doc and "drops the last partial batch" in doc
    assert "100 updates in CoOp and 200 here" in doc
    assert "coop_epoch_learning_rate" in _flat(gradient.coop_learning_rate.__doc__)


def test_projection_exclusions_are_stated_in_readme_and_docstring():
    from catalyst_nb.prompt_learner import PromptLearner

    assert re.search(r"`to_text\(\)` searches the vocabulary without the tokenizer's special and unused entries",
                     _flat(README))
    assert "CoOp searches the whole table" in _flat(README)
    assert "CoOp searches the whole table" in _flat(PromptLearner.to_text.__doc__)


def test_stage_and_distance_are_documented_as_they_behave():
    from catalyst_nb.optim.gradient import GradientPromptOptimizer
    from catalyst_nb.trajectory import StepRecord

    assert "sets it to its round number" in _flat(GradientPromptOptimizer.__doc__)
    distance = _flat(StepRecord.__doc__)
    assert "cosine *similarity* under ``\"cosine\"``" in distance
