"""CoOp's gradient descent on the context vectors, as a step-wise optimizer object.

A notebook drives it one cell at a time: ``opt.step()`` runs one minibatch update on cached image features
and *returns* what happened (a :class:`~catalyst_nb.trajectory.StepRecord`, also appended to
``opt.trajectory``); ``opt.run(n)`` is the loop with a progress bar.  The contract follows
``torch.optim``: ``state_dict()`` / ``load_state_dict()`` with plain-dict state checked on load (and a
continuation that is bit-identical to never having stopped), observers registered as hooks that return
removable handles.  The learning-rate schedule is a pure function of the step index
(:func:`coop_learning_rate`), so there is no scheduler state to drift.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch.utils.hooks import RemovableHandle

from catalyst_nb.evaluation import EvalResult, evaluate_classifier
from catalyst_nb.features import FeatureSet
from catalyst_nb.optim.chunked_loss import auto_class_chunk, text_cross_entropy
from catalyst_nb.prompt_learner import LoadReport, PromptLearner
from catalyst_nb.trajectory import StepRecord, Trajectory

__all__ = ["GradientPromptOptimizer", "GradientConfig", "NonFiniteLossError", "coop_learning_rate"]

log = logging.getLogger(__name__)
_STATE_VERSION = 1

StepHook = Callable[["GradientPromptOptimizer", StepRecord], None]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the step that did it is named and was not applied."""

    def __init__(self, step: int, loss: float):
        super().__init__(
            f"loss is {loss} at step {step}; the update was not applied. Lower the learning rate or "
            "restore an earlier state_dict()."
        )
        self.step = step
        self.loss = loss


@dataclass(frozen=True)
class GradientConfig:
    """Hyperparameters (CoOp's defaults).  ``total_steps`` spans the whole run, all stages included.

    ``class_chunk`` is how many class prompts one text-tower pass encodes with autograd; 0 chooses it
    from ``text_memory_mb``, the memory allowed for their activations (see
    :mod:`catalyst_nb.optim.chunked_loss`: fewer classes per chunk, same gradient).
    """

    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    total_steps: int = 250
    warmup_steps: int = 5
    warmup_lr: float = 1e-5
    seed: int = 0
    project_every: int = 1
    projection_metric: str = "l2"
    precision: str = "auto"
    class_chunk: int = 0
    text_memory_mb: float = 1024.0

    def __post_init__(self) -> None:
        checks = {
            "lr": self.lr > 0,
            "momentum": 0 <= self.momentum < 1,
            "weight_decay": self.weight_decay >= 0,
            "batch_size": self.batch_size >= 1,
            "total_steps": self.total_steps >= 1,
            "warmup_steps": 0 <= self.warmup_steps < self.total_steps,
            "warmup_lr": self.warmup_lr >= 0,
            "project_every": self.project_every >= 0,
            "projection_metric": self.projection_metric in ("l2", "cosine"),
            "precision": self.precision in ("auto", "fp32", "bf16"),
            "class_chunk": self.class_chunk >= 0,
            "text_memory_mb": self.text_memory_mb > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(", ".join(f"{name}={getattr(self, name)!r}" for name in bad) + " is out of range")


def coop_learning_rate(step: int, *, lr: float, total_steps: int, warmup_steps: int, warmup_lr: float) -> float:
    """CoOp's schedule per step: constant ``warmup_lr`` while warming up, then cosine decay to 0.

    Past ``total_steps`` the rate stays at 0 rather than rising again on the next cosine period.
    """
    if step < warmup_steps:
        return warmup_lr
    progress = min(step, total_steps) / total_steps
    return 0.5 * lr * (1.0 + math.cos(math.pi * progress))


class GradientPromptOptimizer:
    """SGD on a :class:`PromptLearner`'s context over cached features, one minibatch per :meth:`step`.

    Args:
        learner: the prompt learner whose ``ctx`` is optimised.
        train: cached training features (with augmented ``views`` if CoOp's augmentation is wanted).
        epochs: convenience for ``total_steps = epochs * ceil(len(train) / batch_size)`` and one epoch of
            warm-up (CoOp: 50 epochs for 16 shots, 1 warm-up epoch); ignored when ``total_steps`` is given.
        **config: any :class:`GradientConfig` field.
    """

    def __init__(self, learner: PromptLearner, train: FeatureSet, *, epochs: int | None = None, **config: Any):
        if len(train) == 0:
            raise ValueError("train features are empty")
        if tuple(train.classnames) != tuple(learner.classnames):
            raise ValueError(
                f"train classes {list(train.classnames)[:5]}... differ from the learner's {list(learner.classnames)[:5]}..."
            )
        batch = int(config.get("batch_size", GradientConfig.batch_size))
        steps_per_epoch = math.ceil(len(train) / max(batch, 1))  # a bad batch size is reported by GradientConfig
        if epochs is not None and "total_steps" not in config:
            if epochs < 1:
                raise ValueError(f"epochs={epochs} must be >= 1")
            config["total_steps"] = epochs * steps_per_epoch
            config.setdefault("warmup_steps", min(steps_per_epoch, config["total_steps"] - 1))
        self.config = GradientConfig(**config)
        self.learner = learner
        self.device = learner.ctx.device
        self.train = train.to(self.device)
        self.trajectory = Trajectory()
        self.stage = 0
        self._step = 0
        self._gen = torch.Generator().manual_seed(self.config.seed)
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = 0
        self._hooks: OrderedDict[int, StepHook] = OrderedDict()  # RemovableHandle keeps a weak reference
        self.optimizer = torch.optim.SGD(
            [learner.ctx], lr=self.config.lr, momentum=self.config.momentum, weight_decay=self.config.weight_decay
        )
        self._logit_scale = learner.clip.logit_scale.to(self.device)

    # ------------------------------------------------------------------------------------------ stepping

    @property
    def step_count(self) -> int:
        """Number of updates applied so far (the index of the next step)."""
        return self._step

    @property
    def lr(self) -> float:
        """The learning rate the next step will use."""
        c = self.config
        return coop_learning_rate(self._step, lr=c.lr, total_steps=c.total_steps, warmup_steps=c.warmup_steps,
                                  warmup_lr=c.warmup_lr)

    def _next_batch(self) -> torch.Tensor:
        """Indices of the next minibatch: epochs are seeded permutations, the last batch may be short."""
        if self._pos >= len(self._perm):
            self._perm = torch.randperm(len(self.train), generator=self._gen)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.config.batch_size]
        self._pos += len(idx)
        return idx

    def _autocast(self):
        use_bf16 = self.config.precision == "bf16" or (self.config.precision == "auto" and self.device.type == "cuda")
        if use_bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def class_chunk(self) -> int:
        """Classes per text-tower pass with autograd (``config.class_chunk``, or chosen from the budget)."""
        if self.config.class_chunk:
            return self.config.class_chunk
        element_bytes = 4 if isinstance(self._autocast(), contextlib.nullcontext) else 2
        return auto_class_chunk(self.learner, memory_mb=self.config.text_memory_mb, element_bytes=element_bytes)

    def step(self) -> StepRecord:
        """One SGD update on one minibatch; returns the record (also appended to ``trajectory``).

        Raises:
            NonFiniteLossError: the loss is NaN/inf; nothing was updated and the step counter is unchanged.
        """
        started = time.perf_counter()
        gen_state, perm, pos = self._gen.get_state(), self._perm, self._pos
        idx = self._next_batch()
        if self.train.views is not None:
            view = torch.randint(self.train.n_views, (len(idx),), generator=self._gen)
            feats = self.train.views[view.to(self.device), idx.to(self.device)]
        else:
            feats = self.train.features[idx.to(self.device)]
        labels = self.train.labels[idx.to(self.device)]
        lr = self.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        computed = text_cross_entropy(self.learner, feats, labels, logit_scale=self._logit_scale,
                                      class_chunk=self.class_chunk, autocast=self._autocast)
        logits = computed.logits
        loss_value = float(computed.loss)
        if not math.isfinite(loss_value):
            self._gen.set_state(gen_state)
            self._perm, self._pos = perm, pos
            raise NonFiniteLossError(self._step, loss_value)
        self.optimizer.zero_grad(set_to_none=True)
        computed.backward()
        grad_norm = float(self.learner.ctx.grad.detach().norm())
        self.optimizer.step()
        accuracy = float((logits.detach().argmax(-1) == labels).float().mean())
        projected = None
        if self.config.project_every and self._step % self.config.project_every == 0:
            projected = self.learner.to_text(metric=self.config.projection_metric)
        record = StepRecord(
            step=self._step,
            loss=loss_value,
            accuracy=accuracy,
            grad_norm=grad_norm,
            lr=lr,
            text=projected.text if projected else None,
            template=projected.template if projected else None,
            token_ids=projected.token_ids[0] if projected else None,
            distance=(sum(projected.distances[0]) / len(projected.distances[0])) if projected else None,
            seconds=time.perf_counter() - started,
            stage=self.stage,
        )
        self._step += 1
        self.trajectory.append(record)
        for hook in list(self._hooks.values()):
            hook(self, record)
        return record

    def run(self, n_steps: int, *, progress: bool = True) -> list[StepRecord]:
        """``n_steps`` calls of :meth:`step` with an optional progress bar; returns their records."""
        if n_steps < 0:
            raise ValueError(f"n_steps={n_steps} must be >= 0")
        handle = self.register_step_hook(ProgressBar(n_steps)) if progress and n_steps else None
        try:
            return [self.step() for _ in range(n_steps)]
        finally:
            if handle is not None:
                hook = self._hooks.get(handle.id)
                handle.remove()
                if isinstance(hook, ProgressBar):
                    hook.close()

    # ------------------------------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, split: FeatureSet) -> EvalResult:
        """Accuracy and loss of the current soft prompt on a feature split."""
        with self._autocast():
            text = self.learner.text_features()
        return evaluate_classifier(text.float(), split.to(self.device), logit_scale=self._logit_scale)

    def load_text(self, template: str, *, reset_momentum: bool = False) -> LoadReport:
        """Restart from a text template: re-embed it as the context (see :meth:`PromptLearner.load_text`).

        The paper carries the optimizer's momentum and the learning-rate schedule across a restart; pass
        ``reset_momentum=True`` to start the momentum afresh instead.
        """
        report = self.learner.load_text(template)
        if reset_momentum:
            self.optimizer.state.clear()
        return report

    # ------------------------------------------------------------------------------------------ hooks

    def register_step_hook(self, hook: StepHook) -> RemovableHandle:
        """Call ``hook(optimizer, record)`` after every step; ``handle.remove()`` unregisters it."""
        handle = RemovableHandle(self._hooks)
        self._hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically: context, momentum, RNG, epoch order, records."""
        return {
            "version": _STATE_VERSION,
            "config": asdict(self.config),
            "step": self._step,
            "stage": self.stage,
            "ctx": self.learner.ctx.detach().cpu().clone(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self._gen.get_state(),
            "perm": self._perm.clone(),
            "pos": self._pos,
            "trajectory": self.trajectory.to_dicts(),
            "train_key": self.train.key,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; refuses state from a different configuration or context shape."""
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise ValueError(f"not a GradientPromptOptimizer state (version {state.get('version') if isinstance(state, dict) else None!r})")
        mine = asdict(self.config)
        diffs = {k: (state["config"].get(k), v) for k, v in mine.items() if state["config"].get(k) != v}
        if diffs:
            raise ValueError(f"state was saved with a different config (saved, current): {diffs}")
        if tuple(state["ctx"].shape) != tuple(self.learner.ctx.shape):
            raise ValueError(f"saved context shape {tuple(state['ctx'].shape)} != {tuple(self.learner.ctx.shape)}")
        if state.get("train_key") != self.train.key:
            log.warning("loading optimizer state saved on other training features (%s != %s)",
                        state.get("train_key"), self.train.key)
        with torch.no_grad():
            self.learner.ctx.copy_(state["ctx"].to(self.learner.ctx.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self._gen.set_state(state["generator"])
        self._perm = state["perm"].clone()
        self._pos = int(state["pos"])
        self._step = int(state["step"])
        self.stage = int(state.get("stage", 0))
        self.trajectory = Trajectory([StepRecord.from_dict(d) for d in state["trajectory"]])

    def __repr__(self) -> str:
        return (f"GradientPromptOptimizer(step={self._step}/{self.config.total_steps}, lr={self.lr:.2e}, "
                f"batch={self.config.batch_size}, train={len(self.train)} images)")


class ProgressBar:
    """A step hook that advances a tqdm bar and shows the latest loss and projected text."""

    def __init__(self, total: int, desc: str = "prompt tuning"):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="step", leave=False)

    def __call__(self, optimizer: GradientPromptOptimizer, record: StepRecord) -> None:
        postfix = {"loss": f"{record.loss:.3f}", "acc": f"{record.accuracy:.2f}"}
        if record.text is not None:
            postfix["text"] = record.text[:30]
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
