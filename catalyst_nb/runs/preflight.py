"""Checks of a run's inputs that need no model weights and no data: made before a run folder is touched.

Why: a model name with a typo, weights that do not fit the model, a device this machine lacks or a data
folder that is not there would otherwise be found only while the model loads, after the output folder
was made, and surface as whatever the loader raises.  Found here, each is one :class:`RunInputError`
(or the backbone's :class:`~catalyst_nb.backbone.ModelNotFoundError`) naming the setting and its value.
"""
from __future__ import annotations

import os

from catalyst_nb.runs.config import RunConfig

__all__ = ["RunInputError", "check_run_inputs"]


class RunInputError(ValueError):
    """A run setting names something this machine does not have (a device, a data folder)."""


def check_run_inputs(config: RunConfig) -> None:
    """Refuse what cannot work: unknown model or weights, an unavailable device, a missing data folder,
    a context longer than the model's text tower holds.

    Raises:
        ModelNotFoundError: the model or its ``pretrained`` source (from the backbone's own checks).
        RunInputError: naming the setting, its value and what is wrong.
    """
    from catalyst_nb.backbone import check_model, context_length_of
    from catalyst_nb.devices import resolve_device

    check_model(config.model, config.pretrained)
    try:
        resolve_device(config.device)
    except (ValueError, RuntimeError) as exc:
        raise RunInputError(f"device={config.device!r}: {exc}") from None
    if config.data == "fashion-mnist":
        if not config.data_root:
            raise RunInputError("data='fashion-mnist' needs data_root (the folder with the IDX files)")
        if not os.path.isdir(config.data_root):
            raise RunInputError(f"data_root={config.data_root!r} is not a folder")
    limit = context_length_of(config.model)
    # start and end markers, at least one class-name token and the period take 4 positions
    if limit is not None and config.gradient.n_ctx > limit - 4:
        raise RunInputError(f"n_ctx={config.gradient.n_ctx} must be 1..{limit - 4} for model {config.model!r} "
                            f"(text context length {limit})")
