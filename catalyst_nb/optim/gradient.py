"""CoOp's gradient descent on the context vectors, as a step-wise optimizer object.

A notebook drives it one cell at a time: ``opt.step()`` runs one minibatch update on cached image features
and *returns* what happened (a :class:`~catalyst_nb.trajectory.StepRecord`, also appended to
``opt.trajectory``); ``opt.run(n)`` is the loop with a progress bar.  The contract follows
``torch.optim``: ``state_dict()`` / ``load_state_dict()`` with plain-dict state checked on load (and a
continuation that is bit-identical to never having stopped), observers registered as hooks that return
removable handles.  The learning-rate schedule is a pure function of the schedule position
(:func:`coop_learning_rate`), so there is no scheduler state to drift.

Schedule and batching, compared with CoOp's code: by default the rate changes every step (warm-up steps at
``warmup_lr``, then a cosine over all steps) and every image is used once per epoch, the last batch of an
epoch being short.  CoOp steps its scheduler once per *epoch* (epoch 0 at the warm-up rate, then a cosine
over epochs that never reaches 0) and drops the last partial batch, so 4 shots x 10 classes x 100 epochs
at batch 32 are 100 updates in CoOp and 200 here.  ``schedule="epoch", drop_last=True`` (CLI:
``--schedule epoch --drop-last true``) reproduces CoOp exactly (:func:`coop_epoch_learning_rate`).
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from catalyst_nb.hooks import HookRegistry, RemovableHandle
from catalyst_nb.evaluation import EvalResult, evaluate_classifier
from catalyst_nb.features import FeatureSet
from catalyst_nb.optimizer_state import StateError, check_state, pack_state
from catalyst_nb.optim.chunked_loss import auto_class_chunk, text_cross_entropy
from catalyst_nb.prompt_learner import LoadReport, PromptLearner
from catalyst_nb.trajectory import StepRecord, Trajectory

__all__ = ["GradientPromptOptimizer", "GradientConfig", "NonFiniteContextError", "NonFiniteLossError",
           "coop_epoch_learning_rate", "coop_learning_rate"]

log = logging.getLogger(__name__)
_STATE_VERSION = 2  # 2: the common layout of catalyst_nb.optimizer_state (1 was a flat dict)
_STATE_KEYS = ("step", "schedule_step", "schedule_total", "stage", "ctx", "optimizer", "generator", "perm", "pos",
               "trajectory")

StepHook = Callable[["GradientPromptOptimizer", StepRecord], None]


@dataclass(frozen=True)
class _CheckedState:
    """A gradient state that passed every check, ready to apply."""

    ctx: torch.Tensor
    optimizer: Mapping[str, Any]
    generator: torch.Tensor
    perm: torch.Tensor
    pos: int
    step: int
    schedule_step: int
    schedule_total: int
    stage: int
    records: list[StepRecord]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the step that did it is named and was not applied."""

    def __init__(self, step: int, loss: float):
        super().__init__(
            f"loss is {loss} at step {step}; the update was not applied. Lower the learning rate or "
            "restore an earlier state_dict()."
        )
        self.step = step
        self.loss = loss


class NonFiniteContextError(NonFiniteLossError):
    """The update made the context NaN or infinite (the loss was still finite); the update was undone."""

    def __init__(self, step: int, loss: float):
        FloatingPointError.__init__(
            self,
            f"the context became NaN or infinite at step {step} (loss {loss}); the update was undone. Lower the "
            "learning rate or restore an earlier state_dict().",
        )
        self.step = step
        self.loss = loss


_DEFAULT_WARMUP = 5


@dataclass(frozen=True)
class GradientConfig:
    """Hyperparameters (CoOp's defaults).  ``total_steps`` spans the whole run, all stages included.

    ``warmup_steps=None`` (the default) means 5 steps, cut to ``total_steps - 1`` for shorter runs, so a
    short run never fails on a value its user did not set.  ``schedule`` is ``"step"`` (the rate follows
    the step) or ``"epoch"`` (CoOp's: the rate changes once per epoch); ``drop_last`` skips the last
    partial batch of each epoch as CoOp does (see the module docstring for the difference).

    ``class_chunk`` is how many class prompts one text-tower pass encodes with autograd; 0 chooses it
    from ``text_memory_mb``, the memory allowed for their activations (see
    :mod:`catalyst_nb.optim.chunked_loss`: fewer classes per chunk, same gradient).
    """

    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    total_steps: int = 250
    warmup_steps: int | None = None
    warmup_lr: float = 1e-5
    seed: int = 0
    project_every: int = 1
    projection_metric: str = "l2"
    precision: str = "auto"
    schedule: str = "step"
    drop_last: bool = False
    class_chunk: int = 0
    text_memory_mb: float = 1024.0

    def __post_init__(self) -> None:
        if self.warmup_steps is None and isinstance(self.total_steps, int):
            object.__setattr__(self, "warmup_steps", min(_DEFAULT_WARMUP, max(self.total_steps - 1, 0)))

        def finite(value: Any) -> bool:
            return isinstance(value, (int, float)) and math.isfinite(value)

        checks = {
            "lr": finite(self.lr) and self.lr > 0,
            "momentum": finite(self.momentum) and 0 <= self.momentum < 1,
            "weight_decay": finite(self.weight_decay) and self.weight_decay >= 0,
            "batch_size": isinstance(self.batch_size, int) and self.batch_size >= 1,
            "total_steps": isinstance(self.total_steps, int) and self.total_steps >= 1,
            "warmup_steps": isinstance(self.warmup_steps, int) and 0 <= self.warmup_steps < self.total_steps,
            "warmup_lr": finite(self.warmup_lr) and self.warmup_lr >= 0,
            "project_every": isinstance(self.project_every, int) and self.project_every >= 0,
            "projection_metric": self.projection_metric in ("l2", "cosine"),
            "precision": self.precision in ("auto", "fp32", "bf16"),
            "schedule": self.schedule in ("step", "epoch"),
            "drop_last": isinstance(self.drop_last, bool),
            "class_chunk": self.class_chunk >= 0,
            "text_memory_mb": self.text_memory_mb > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(", ".join(f"{name}={getattr(self, name)!r}" for name in bad) + " is out of range")


def coop_learning_rate(step: int, *, lr: float, total_steps: int, warmup_steps: int, warmup_lr: float) -> float:
    """CoOp's schedule per step: constant ``warmup_lr`` while warming up, then cosine decay to 0.

    Past ``total_steps`` the rate stays at 0 rather than rising again on the next cosine period.  CoOp's
    own scheduler works per epoch instead; see :func:`coop_epoch_learning_rate`.
    """
    if step < warmup_steps:
        return warmup_lr
    progress = min(step, total_steps) / total_steps
    return 0.5 * lr * (1.0 + math.cos(math.pi * progress))


def coop_epoch_learning_rate(epoch: int, *, lr: float, epochs: int, warmup_epochs: int, warmup_lr: float) -> float:
    """CoOp's exact schedule per epoch: ``warmup_lr`` for the warm-up epochs, then a cosine over ``epochs``.

    CoOp wraps ``CosineAnnealingLR(T_max=epochs)`` in a constant warm-up and steps it after each epoch, so
    epoch ``warmup_epochs + j`` runs at ``0.5 * lr * (1 + cos(pi * j / epochs))``: the first epoch after
    warm-up at the full rate, the last one still above 0.
    """
    if epoch < warmup_epochs:
        return warmup_lr
    return 0.5 * lr * (1.0 + math.cos(math.pi * min(epoch - warmup_epochs, epochs) / epochs))


def _steps_per_epoch(n_images: int, batch_size: int, drop_last: bool) -> int:
    if drop_last and n_images >= batch_size:
        return n_images // batch_size
    return math.ceil(n_images / batch_size)


class GradientPromptOptimizer:
    """SGD on a :class:`PromptLearner`'s context over cached features, one minibatch per :meth:`step`.

    Args:
        learner: the prompt learner whose ``ctx`` is optimised.
        train: cached training features (with augmented ``views`` if CoOp's augmentation is wanted).
        epochs: convenience for ``total_steps = epochs * steps_per_epoch`` and one epoch of warm-up
            (CoOp's published few-shot runs: 50 epochs for 1-2 shots, 100 for 4, 200 for 8-16 shots, with 1
            warm-up epoch); ignored when ``total_steps`` is given.
        **config: any :class:`GradientConfig` field.

    Attributes:
        stage: the label written into each step's record (``StepRecord.stage``).  It is not counted here:
            a plain run stays at stage 0, and :class:`~catalyst_nb.optim.CatalystOptimizer` sets it to its
            round number before each gradient stage, so a trajectory can be cut into stages.
    """

    def __init__(self, learner: PromptLearner, train: FeatureSet, *, epochs: int | None = None, **config: Any):
        if len(train) == 0:
            raise ValueError("train features are empty")
        if tuple(train.classnames) != tuple(learner.classnames):
            raise ValueError(
                f"train classes {list(train.classnames)[:5]}... differ from the learner's {list(learner.classnames)[:5]}..."
            )
        present = sorted(set(train.labels.tolist()))
        if len(present) < 2:
            raise ValueError(
                f"the training features hold {len(present)} class(es) {[train.classnames[i] for i in present]}: "
                "a classifier needs at least two (with one, every prediction is right and nothing is learned)"
            )
        batch = config.get("batch_size", GradientConfig.batch_size)
        batch = batch if isinstance(batch, int) and batch >= 1 else 1  # a bad batch size is reported by GradientConfig
        steps_per_epoch = _steps_per_epoch(len(train), batch, bool(config.get("drop_last", False)))
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
        self._schedule_step = 0
        self._schedule_total = self.config.total_steps
        self.steps_per_epoch = _steps_per_epoch(len(train), self.config.batch_size, self.config.drop_last)
        self._gen = torch.Generator().manual_seed(self.config.seed)
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = 0
        self._hooks = HookRegistry()
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
        """The learning rate the next step will use (a function of the schedule position, not the step)."""
        return self.learning_rate_at(self._schedule_step, self._schedule_total)

    def learning_rate_at(self, schedule_step: int, schedule_total: int) -> float:
        """The rate at a schedule position over a schedule of ``schedule_total`` steps (see :meth:`rewarm`);
        for forks of this optimizer whose schedules differ (:mod:`catalyst_nb.optim.probing`)."""
        c = self.config
        warmup = min(c.warmup_steps, max(schedule_total - 1, 0))
        if c.schedule == "epoch":
            spe = self.steps_per_epoch
            return coop_epoch_learning_rate(schedule_step // spe, lr=c.lr, epochs=max(1, math.ceil(schedule_total / spe)),
                                            warmup_epochs=math.ceil(warmup / spe), warmup_lr=c.warmup_lr)
        return coop_learning_rate(schedule_step, lr=c.lr, total_steps=schedule_total,
                                  warmup_steps=warmup, warmup_lr=c.warmup_lr)

    @property
    def schedule_step(self) -> int:
        """Position in the learning-rate schedule; equals ``step_count`` until a :meth:`rewarm`."""
        return self._schedule_step

    def rewarm(self) -> None:
        """Restart the schedule (warm-up, then cosine) over the steps left in the budget.

        The global step keeps rising; only the schedule position goes back to 0 (optax keeps the schedule
        count as its own state for the same reason).  The paper's restarts carry the schedule on; this is
        the alternative for restarts from text, which land far from the tuned context.
        """
        self._schedule_total = max(self.config.total_steps - self._step, 1)
        self._schedule_step = 0

    def _next_batch(self) -> torch.Tensor:
        """Indices of the next minibatch: epochs are seeded permutations; the last batch may be short, or
        is skipped with ``drop_last`` (as in CoOp, only when there is at least one full batch)."""
        size = self.config.batch_size
        drop = self.config.drop_last and len(self.train) >= size
        if self._pos >= len(self._perm) or (drop and len(self._perm) - self._pos < size):
            self._perm = torch.randperm(len(self.train), generator=self._gen)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.config.batch_size]
        self._pos += len(idx)
        return idx

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The precision context every text-tower pass of this optimizer runs in (``config.precision``)."""
        return self._autocast()

    def draw_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and labels of the next minibatch; moves the epoch order and the generator on.

        :meth:`step` draws its batch here; forks that share this optimizer's data order (the probe's)
        draw theirs here too, so every fork sees the batches a separate step would have seen.
        """
        idx = self._next_batch()
        if self.train.views is not None:
            view = torch.randint(self.train.n_views, (len(idx),), generator=self._gen)
            feats = self.train.views[view.to(self.device), idx.to(self.device)]
        else:
            feats = self.train.features[idx.to(self.device)]
        return feats, self.train.labels[idx.to(self.device)]

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
        feats, labels = self.draw_batch()
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
        ctx_before = self.learner.ctx.detach().clone()
        momentum_before = {k: v.clone() if torch.is_tensor(v) else v
                           for k, v in self.optimizer.state.get(self.learner.ctx, {}).items()}
        self.optimizer.step()
        if not bool(torch.isfinite(self.learner.ctx).all()):  # caught now, not by the next step's loss
            with torch.no_grad():
                self.learner.ctx.copy_(ctx_before)
            if momentum_before:
                self.optimizer.state[self.learner.ctx] = momentum_before
            else:
                self.optimizer.state.pop(self.learner.ctx, None)
            self._gen.set_state(gen_state)
            self._perm, self._pos = perm, pos
            raise NonFiniteContextError(self._step, loss_value)
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
            context_text=projected.text if projected else None,
            template=projected.template if projected else None,
            token_ids=projected.token_ids[0] if projected else None,
            distance=(sum(projected.distances[0]) / len(projected.distances[0])) if projected else None,
            seconds=time.perf_counter() - started,
            stage=self.stage,
        )
        self._step += 1
        self._schedule_step += 1
        self.trajectory.append(record)
        self._hooks(self, record)
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
                hook = self._hooks.get(handle)
                handle.remove()
                if isinstance(hook, ProgressBar):
                    hook.close()

    # ------------------------------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, split: FeatureSet) -> EvalResult:
        """Accuracy and loss of the current soft prompt on a feature split.

        The split's labels must mean the learner's classes in the learner's order: a split whose class
        list is another order (e.g. sorted folder names) would be scored against the wrong prompts.
        """
        if tuple(split.classnames) != tuple(self.learner.classnames):
            raise ValueError(
                f"split {split.name!r} has classes {list(split.classnames)[:5]}..., the learner has "
                f"{list(self.learner.classnames)[:5]}... (same classes in the same order are needed)"
            )
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
        return self._hooks.register(hook)

    def replay_step_hooks(self, records: Sequence[StepRecord]) -> None:
        """Call the step hooks for steps that were taken elsewhere and adopted (a probe fork's), in order,
        so observers see every live step exactly once."""
        for record in records:
            self._hooks(self, record)

    # ------------------------------------------------------------------------------------------ state

    def _identity(self) -> dict[str, Any]:
        return {"model": self.learner.clip.name, "classes": list(self.learner.classnames),
                "context_shape": list(self.learner.ctx.shape), "training_features": self.train.key}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically: context, momentum, RNG, epoch order, records."""
        return pack_state(optimizer="GradientPromptOptimizer", version=_STATE_VERSION, config=asdict(self.config),
                          identity=self._identity(), state={
                              "step": self._step,
                              "schedule_step": self._schedule_step,
                              "schedule_total": self._schedule_total,
                              "stage": self.stage,
                              "ctx": self.learner.ctx.detach().cpu().clone(),
                              "optimizer": self.optimizer.state_dict(),
                              "generator": self._gen.get_state(),
                              "perm": self._perm.clone(),
                              "pos": self._pos,
                              "trajectory": self.trajectory.to_dicts(),
                          })

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`.

        Everything is checked before anything changes, so a refused state leaves the optimizer as it was.
        Refused: another optimizer's state, another version, missing or unknown entries, another
        configuration, another model, other classes, another context shape, other training features
        (another model's image tower or other images), or damaged entries.
        """
        self._apply_state(self._validate_state(state))

    def _validate_state(self, state: Mapping[str, Any]) -> _CheckedState:
        """Every check of :meth:`load_state_dict`; returns the values to apply, changes nothing."""
        entries = check_state(state, optimizer="GradientPromptOptimizer", version=_STATE_VERSION, keys=_STATE_KEYS,
                              config=asdict(self.config), identity=self._identity())
        ctx = entries["ctx"]
        if not torch.is_tensor(ctx) or not ctx.is_floating_point():
            raise StateError(f"saved context is not a float tensor: {type(ctx).__name__}")
        if tuple(ctx.shape) != tuple(self.learner.ctx.shape):
            raise StateError(f"saved context shape {tuple(ctx.shape)} != {tuple(self.learner.ctx.shape)}")
        if not bool(torch.isfinite(ctx).all()):
            raise StateError("saved context holds NaN or infinite values")
        try:
            torch.Generator().set_state(entries["generator"])
        except (TypeError, RuntimeError, ValueError) as exc:
            raise StateError(f"saved random generator state is damaged: {exc}") from None
        probe_opt = torch.optim.SGD([torch.zeros_like(self.learner.ctx, device="cpu", requires_grad=True)], lr=1.0)
        try:
            probe_opt.load_state_dict(entries["optimizer"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise StateError(f"saved SGD state is damaged: {exc}") from None
        for buf in (v.get("momentum_buffer") for v in entries["optimizer"].get("state", {}).values()):
            if buf is not None and (not torch.is_tensor(buf) or tuple(buf.shape) != tuple(ctx.shape)):
                raise StateError("saved momentum does not match the context's shape")
        try:
            checked = _CheckedState(
                ctx=ctx, optimizer=entries["optimizer"], generator=entries["generator"], perm=entries["perm"],
                pos=int(entries["pos"]), step=int(entries["step"]), schedule_step=int(entries["schedule_step"]),
                schedule_total=int(entries["schedule_total"]), stage=int(entries["stage"]),
                records=[StepRecord.from_dict(d) for d in entries["trajectory"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"GradientPromptOptimizer state is damaged: {exc}") from None
        perm = checked.perm
        if not torch.is_tensor(perm) or perm.dtype != torch.long or len(perm) not in (0, len(self.train)):
            raise StateError("saved epoch order does not match the training features")
        if len(perm) and (int(perm.min()) < 0 or int(perm.max()) >= len(self.train)):
            raise StateError("saved epoch order indexes images the training features do not have")
        c = checked
        if not 0 <= c.pos <= len(perm) or not 0 <= c.step or not 0 <= c.schedule_step or c.schedule_total < 1:
            raise StateError(f"saved positions are out of range (step {c.step}, pos {c.pos}, schedule "
                             f"{c.schedule_step}/{c.schedule_total})")
        return checked

    def _apply_state(self, checked: _CheckedState) -> None:
        """Set a state that :meth:`_validate_state` accepted (nothing here can fail half-way)."""
        with torch.no_grad():
            self.learner.ctx.copy_(checked.ctx.to(self.learner.ctx.device))
        self.optimizer.load_state_dict(checked.optimizer)
        self._gen.set_state(checked.generator)
        self._perm = checked.perm.clone()
        self._pos = checked.pos
        self._step = checked.step
        self._schedule_step = checked.schedule_step
        self._schedule_total = checked.schedule_total
        self.stage = checked.stage
        self.trajectory = Trajectory(checked.records)

    def __repr__(self) -> str:
        return (f"GradientPromptOptimizer(step={self._step}/{self.config.total_steps}, lr={self.lr:.2e}, "
                f"batch={self.config.batch_size}, train={len(self.train)} images)")


class ProgressBar:
    """A step hook that advances a tqdm bar and shows the latest loss and projected text."""

    def __init__(self, total: int, desc: str = "prompt tuning", *, initial: int = 0):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", leave=False)

    def __call__(self, optimizer: GradientPromptOptimizer, record: StepRecord) -> None:
        postfix = {"loss": f"{record.loss:.3f}", "acc": f"{record.accuracy:.2f}"}
        if record.context_text is not None:
            postfix["text"] = record.context_text[:30]
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
