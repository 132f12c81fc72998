"""Step time and peak memory: GradientPromptOptimizer against a straightforward CoOp step and the floor.

Three ways to take the same SGD step on the same soft context (n_ctx 16, class name at the end), the same
images, labels, classes, learning rate and seed, measured side by side in one process:

* **CoOp**: the step as CoOp's trainer writes it, spelled out below: the image tower runs on every
  batch, every class prompt is encoded at the tokenizer's full context length (77 for CLIP), then
  cross-entropy, backward and SGD.
* **floor**: the text tower's own forward and backward on the real tokens only (every prompt cut to the
  longest real prompt) over cached image features: what any soft-prompt step must pay without the tricks.
* **ours**: ``GradientPromptOptimizer.step()`` as shipped (default config, the context projected to text
  after the step included): the shared-prefix text pass, and above a memory budget the class-chunked
  exact gradient.

For 10, 100 and 1,000 classes, on a random-weight ViT-B-16 (the same cost as pretrained weights) and on
the embedded model (``catalyst-fmnist``, whose bidirectional text tower takes the plain path).  The first
step's losses of the three must agree (the same math; augmentation is off).  It also times one scoring
pass of 10 hard templates over all classes (``encode_template_batch``), the LLM catalyst's per-round cost.

Memory: on the CPU the process's peak resident set size during the method's steps (``VmHWM`` from
``/proc/self/status``, reset before each method through ``/proc/self/clear_refs``) — the whole process,
model weights and Python runtime included; on CUDA ``torch.cuda.max_memory_allocated``.  A cell whose
memory, extrapolated linearly in the number of classes from the previous class count, would exceed
``--max-gb`` is skipped and its estimate printed.

    python benchmarks/speed.py                 # everything (about 10-15 minutes on 2 CPU cores)
    python benchmarks/speed.py --quick         # 10 and 100 classes, one timed step
    python benchmarks/speed.py --models embedded --classes 10,100 --steps 3
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import math
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F
from torch import nn

from catalyst_nb import GradientPromptOptimizer, PromptLearner, load_clip
from catalyst_nb.features import FeatureSet
from catalyst_nb.optim.gradient import coop_learning_rate
from catalyst_nb.template_scoring import encode_template_batch
from catalyst_nb.threads import configure_torch_threads

N_CTX = 16
LR, MOMENTUM, WEIGHT_DECAY = 0.002, 0.9, 5e-4
TEMPLATES = [
    "a photo of a {}.", "a blurry photo of a {}.", "a close-up photo of the {}.", "itap of a {}.",
    "a bright photo of a {}.", "a photo of the small {}.", "a sketch of a {}.", "a good photo of the {}.",
    "a cropped photo of a {}.", "art of the {}.",
]
MODELS = {
    "vit": ("ViT-B-16", None),
    "embedded": ("catalyst-fmnist", "embedded"),
    # small random models shipped for tests: a smoke run of this script in seconds
    "tiny-native": ("tiny-native", None),
    "tiny-hf": ("tiny-hf", None),
}


# ------------------------------------------------------------------------------------------- memory


class PeakMemory:
    """Peak memory of a block: process peak RSS on the CPU, peak allocated tensor memory on CUDA (GB)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_gb = float("nan")
        self.before_gb = float("nan")

    @staticmethod
    def _status_gb(key: str) -> float:
        with open("/proc/self/status") as fh:
            return int(re.search(rf"{key}:\s+(\d+)", fh.read()).group(1)) / 2**20

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.before_gb = torch.cuda.memory_allocated() / 2**30
            return self
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed heap pages back, so RSS is what is in use
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # reset the peak-RSS mark to the current RSS
        except OSError as exc:  # not Linux, or not allowed: a peak of the whole run is not this block's
            raise RuntimeError("measuring peak memory on the CPU needs a writable /proc/self/clear_refs (Linux)") from exc
        self.before_gb = self._status_gb("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_gb = torch.cuda.max_memory_allocated() / 2**30
        else:
            self.peak_gb = self._status_gb("VmHWM")


# ------------------------------------------------------------------------------------------- set-up


def synthetic_classnames(clip, n: int) -> list[str]:
    """``n`` distinct two-word class names from the tokenizer's own vocabulary (deterministic).

    Two words, like "golden retriever" or "tiger shark", make prompts about as long as ImageNet's.
    """
    tok = clip.tokenizer
    words: list[str] = []
    for i in range(1000, tok.vocab_size, 7):
        word = tok.decode([i]).strip()
        if word.isalpha() and word.isascii() and len(word) > 3 and word not in words:
            words.append(word)
        if len(words) >= 2 * n:
            break
    if len(words) < 2 * n:
        raise RuntimeError(f"vocabulary too small for {n} class names")
    return [f"{words[2 * i]} {words[2 * i + 1]}" for i in range(n)]


@dataclass
class Problem:
    """One benchmark cell's shared data: classes, images, their cached features, labels, initial context."""

    clip: object
    classnames: list[str]
    pixels: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    ctx0: torch.Tensor


def make_problem(clip, n_classes: int, batch: int, seed: int = 0) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    size = clip.model.visual.image_size
    size = size if isinstance(size, (tuple, list)) else (size, size)
    pixels = torch.randn(batch, 3, *size, generator=gen).to(clip.device)
    labels = torch.randint(n_classes, (batch,), generator=gen).to(clip.device)
    features = clip.encode_images(pixels)  # the cache the optimizer starts from (not timed)
    names = synthetic_classnames(clip, n_classes)
    # a learner needs two classes; the shared context it draws does not depend on them
    ctx0 = PromptLearner(clip, names[:2], n_ctx=N_CTX, seed=seed).ctx.detach().clone()
    return Problem(clip, names, pixels, features, labels, ctx0)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------- the three steps


class _SGDUpdate:
    """The update every compared step ends with: zero the gradients, back-propagate, SGD, count."""

    optimizer: torch.optim.Optimizer
    steps: int

    def _update(self, loss: torch.Tensor) -> float:
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        return float(loss.detach())


class CoOpStep(_SGDUpdate):
    """CoOp's training step, as its trainer does it (image tower on the batch, full context length)."""

    def __init__(self, problem: Problem, precision: str):
        clip = problem.clip
        self.clip, self.problem, self.precision = clip, problem, precision
        tok = clip.tokenizer
        prompts = [" ".join(["X"] * N_CTX) + " " + name + "." for name in problem.classnames]
        self.tokenized = tok(prompts).to(clip.device)  # [n_classes, context_length]
        with torch.no_grad():
            embedding = clip.token_embedding(self.tokenized).float()
        self.token_prefix = embedding[:, :1]  # start marker
        self.token_suffix = embedding[:, 1 + N_CTX :]  # class name, ".", end marker, padding
        self.ctx = nn.Parameter(problem.ctx0.clone())
        self.optimizer = torch.optim.SGD([self.ctx], lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        self.steps = 0
        layout = PromptLearner(clip, problem.classnames, n_ctx=N_CTX).token_ids
        if not torch.equal(self.tokenized[:, : layout.shape[1]].cpu(), layout.cpu()):
            raise RuntimeError("CoOp's prompts are not the learner's layout; the comparison would be unfair")
        self.note = f"{self.tokenized.shape[1]} tokens"

    def text_encoder(self, prompts: torch.Tensor) -> torch.Tensor:
        model = self.clip.model
        if self.clip.text_kind == "native":
            x = prompts + model.positional_embedding
            x = model.transformer(x, attn_mask=model.attn_mask)
            x = model.ln_final(x)
            x = x[torch.arange(x.shape[0], device=x.device), self.tokenized.argmax(dim=-1)]
            return x @ model.text_projection
        text = model.text
        mask = (self.tokenized != text.config.pad_token_id).long()
        out = text.transformer(inputs_embeds=prompts, attention_mask=mask)
        return text.proj(text.pooler(out, mask))

    def step(self) -> float:
        n_cls = self.tokenized.shape[0]
        for group in self.optimizer.param_groups:
            group["lr"] = coop_learning_rate(self.steps, lr=LR, total_steps=10_000, warmup_steps=0, warmup_lr=0.0)
        with autocast(self.clip.device, self.precision):
            image_features = self.clip.model.encode_image(self.problem.pixels)
            ctx = self.ctx.unsqueeze(0).expand(n_cls, -1, -1)
            prompts = torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1)
            text_features = self.text_encoder(prompts)
        image_features = F.normalize(image_features.float(), dim=-1)
        text_features = F.normalize(text_features.float(), dim=-1)
        logits = self.clip.logit_scale * image_features @ text_features.T
        return self._update(F.cross_entropy(logits, self.problem.labels))


class FloorStep(_SGDUpdate):
    """Text tower forward and backward on the real tokens only, over cached features (no tricks)."""

    def __init__(self, problem: Problem, precision: str):
        self.problem, self.precision = problem, precision
        self.learner = PromptLearner(problem.clip, problem.classnames, n_ctx=N_CTX, shared_prefix=False)
        with torch.no_grad():
            self.learner.ctx.copy_(problem.ctx0)
        self.optimizer = torch.optim.SGD([self.learner.ctx], lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        self.steps = 0
        self.note = f"{self.learner.token_ids.shape[1]} tokens"

    def step(self) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = coop_learning_rate(self.steps, lr=LR, total_steps=10_000, warmup_steps=0, warmup_lr=0.0)
        with autocast(self.problem.clip.device, self.precision):
            text = self.learner.text_features()
        logits = self.problem.clip.logit_scale * self.problem.features @ text.float().T
        return self._update(F.cross_entropy(logits, self.problem.labels))


class OursStep:
    """``GradientPromptOptimizer.step()`` with its default configuration on the same batch."""

    def __init__(self, problem: Problem, precision: str):
        clip = problem.clip
        learner = PromptLearner(clip, problem.classnames, n_ctx=N_CTX)
        with torch.no_grad():
            learner.ctx.copy_(problem.ctx0)
        train = FeatureSet(problem.features, problem.labels, None, tuple(problem.classnames), key="speed-bench")
        self.opt = GradientPromptOptimizer(
            learner, train, batch_size=len(problem.labels), total_steps=10_000, warmup_steps=0,
            lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, precision=precision,
        )
        n_chunks = math.ceil(len(problem.classnames) / self.opt.class_chunk)
        self.note = f"{learner.text_path}, {n_chunks} chunk{'s' if n_chunks > 1 else ''}"

    def step(self) -> float:
        return self.opt.step().loss


# ------------------------------------------------------------------------------------------- running


@dataclass
class Cell:
    model: str
    n_classes: int
    method: str
    seconds: float = float("nan")
    peak_gb: float = float("nan")
    before_gb: float = float("nan")
    losses: list[float] = field(default_factory=list)
    note: str = ""
    skipped: bool = False


def run_methods(
    methods: dict[str, type], problem: Problem, *, steps: int, precision: str, model: str, budget_s: float
) -> list[Cell]:
    """First step of each method alone (its peak memory and loss), then the timed steps interleaved.

    Timed rounds stop early, after at least one, once they have taken ``budget_s`` seconds together.

    Interleaving (one step of each method per round) lets a change in the machine's load hit all
    methods alike, so the ratios stay fair on a shared machine.  The first steps run in the order given,
    ``ours`` first, so that its peak is measured before the other methods' buffers exist.
    """
    device = problem.clip.device
    runners, cells = {}, {}
    for label, method_cls in methods.items():
        cell = Cell(model, len(problem.classnames), label)
        with PeakMemory(device) as mem:
            runner = method_cls(problem, precision)
            cell.losses.append(runner.step())
            sync(device)
        cell.peak_gb, cell.before_gb, cell.note = mem.peak_gb, mem.before_gb, runner.note
        runners[label], cells[label] = runner, cell
    times: dict[str, list[float]] = {label: [] for label in methods}
    started = time.perf_counter()
    for round_ in range(steps):
        if round_ and time.perf_counter() - started > budget_s:
            break
        for label, runner in runners.items():
            sync(device)
            start = time.perf_counter()
            cells[label].losses.append(runner.step())
            sync(device)
            times[label].append(time.perf_counter() - start)
    for label, cell in cells.items():
        cell.seconds = statistics.median(times[label]) if times[label] else float("nan")
    runners.clear()
    return list(cells.values())


def scoring_seconds(clip, classnames: list[str], repeats: int = 1) -> float:
    encode_template_batch(clip, TEMPLATES[:2], classnames[:4])  # warm-up
    times = []
    for _ in range(repeats):
        sync(clip.device)
        start = time.perf_counter()
        encode_template_batch(clip, TEMPLATES, classnames)
        sync(clip.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fmt(x: float, digits: int = 3) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vit,embedded", help="comma list of: vit, embedded")
    parser.add_argument("--classes", default="10,100,1000", help="comma list of class counts")
    parser.add_argument("--methods", default="ours,floor,coop", help="comma list of: ours, floor, coop")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per cell, after one untimed first step")
    parser.add_argument("--cell-budget-s", type=float, default=60.0,
                        help="stop a cell's timed rounds (after the first) once they took this long")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: CPU affinity)")
    parser.add_argument("--max-gb", type=float, default=None,
                        help="skip cells whose extrapolated memory exceeds this (default: 70%% of available)")
    parser.add_argument("--llm-call-s", type=float, default=1.0,
                        help="time of one LLM call, for the round-cost line (README: about 0.7-1.1 s warm)")
    parser.add_argument("--scoring", default="embedded:10,100",
                        help="where to time template scoring: models:classes, e.g. 'vit,embedded:10,100,1000'")
    parser.add_argument("--quick", action="store_true", help="10 and 100 classes, one timed step")
    args = parser.parse_args(argv)
    scoring_models, _, scoring_classes = args.scoring.partition(":")
    args.scoring_models = {m.strip() for m in scoring_models.split(",") if m.strip()}
    args.scoring_classes = {int(c) for c in scoring_classes.split(",") if c.strip()}
    if args.quick:
        args.classes, args.steps = "10,100", 1
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    class_counts = sorted(int(c) for c in args.classes.split(","))
    if bad := [m for m in models if m not in MODELS]:
        parser.error(f"unknown model(s) {bad}; choose from {sorted(MODELS)}")
    if bad := [m for m in methods if m not in ("coop", "floor", "ours")]:
        parser.error(f"unknown method(s) {bad}")
    if args.steps < 0:
        parser.error(f"--steps={args.steps} must be >= 0")
    device = torch.device(args.device)
    threads = configure_torch_threads(threads=args.threads) if device.type == "cpu" else torch.get_num_threads()
    if args.max_gb is None:
        if device.type == "cuda":
            args.max_gb = 0.9 * torch.cuda.get_device_properties(device).total_memory / 2**30
        else:
            args.max_gb = 0.7 * _available_gb()
    method_cls = {"ours": OursStep, "floor": FloorStep, "coop": CoOpStep}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {device} ({args.precision}), torch {torch.__version__}, {threads} threads, "
          f"load average {load:.2f} at start; batch {args.batch}, n_ctx {N_CTX}, {1 + args.steps} steps per cell "
          f"(median of up to {args.steps} timed, interleaved; first untimed); memory = {'peak CUDA allocated' if device.type == 'cuda' else 'process peak RSS'}")
    sys.stdout.flush()

    cells: list[Cell] = []
    scoring: list[tuple[str, int, float]] = []
    for key in models:
        name, tag = MODELS[key]
        torch.manual_seed(0)
        clip = load_clip(name, tag, device=device)
        print(f"\n== {name} ({'random weights' if tag is None else tag}), text tower {clip.text_kind}")
        prev: dict[str, Cell] = {}
        for n_classes in class_counts:
            problem = make_problem(clip, n_classes, args.batch)
            todo: dict[str, type] = {}
            for method in methods:
                last = prev.get(method)
                if last is not None and not last.skipped:
                    estimate = last.before_gb + (last.peak_gb - last.before_gb) * n_classes / last.n_classes
                    if estimate > args.max_gb:
                        cell = Cell(key, n_classes, method, skipped=True, peak_gb=estimate,
                                    note=f"not run: about {estimate:.0f} GB by extrapolation (> {args.max_gb:.0f} GB)")
                        cells.append(cell)
                        prev[method] = cell
                        print(f"{n_classes:>6} {method:<6} {cell.note}")
                        continue
                todo[method] = method_cls[method]
            cell_runs = run_methods(todo, problem, steps=args.steps, precision=args.precision, model=key,
                                    budget_s=args.cell_budget_s)
            for cell in cell_runs:
                cells.append(cell)
                prev[cell.method] = cell
                print(f"{n_classes:>6} {cell.method:<6} {fmt(cell.seconds):>8} s/step x{len(cell.losses) - 1}  peak {fmt(cell.peak_gb, 2)} GB "
                      f"(before {fmt(cell.before_gb, 2)})  first loss {cell.losses[0]:.5f}  {cell.note}")
            sys.stdout.flush()
            if key in args.scoring_models and n_classes in args.scoring_classes:
                scoring.append((key, n_classes, scoring_seconds(clip, problem.classnames)))
            del problem
        del clip
        gc.collect()

    print_table(cells, scoring, methods, args)
    return 0


def _available_gb() -> float:
    with open("/proc/meminfo") as fh:
        return int(re.search(r"MemAvailable:\s+(\d+)", fh.read()).group(1)) / 2**20


def print_table(cells: list[Cell], scoring, methods: list[str], args) -> None:
    methods = [m for m in ("coop", "floor", "ours") if m in methods]
    by = {(c.model, c.n_classes, c.method): c for c in cells}
    keys = sorted({(c.model, c.n_classes) for c in cells}, key=lambda k: (list(MODELS).index(k[0]), k[1]))
    print("\n| model | classes | " + " | ".join(f"{m} s/step" for m in methods) + " | "
          + " | ".join(f"{m} peak GB" for m in methods) + " | CoOp/ours | floor/ours | loss spread: first step / all steps |")
    print("|" + "---|" * (4 + 2 * len(methods) + 1))
    for model, n in keys:
        row = [by.get((model, n, m)) for m in methods]
        secs = [fmt(c.seconds) if c and not c.skipped else "not run" for c in row]
        mems = [fmt(c.peak_gb, 2) if c and not c.skipped else (f"~{c.peak_gb:.0f} (est.)" if c else "-") for c in row]
        ours, coop, floor = by.get((model, n, "ours")), by.get((model, n, "coop")), by.get((model, n, "floor"))

        def ratio(a):
            if a is None or ours is None or a.skipped or ours.skipped:
                return "-"
            return f"{a.seconds / ours.seconds:.1f}x"

        ran = [c.losses for c in row if c and c.losses]
        common = min((len(l) for l in ran), default=0)
        spread = "-"
        if len(ran) > 1:
            first = max(l[0] for l in ran) - min(l[0] for l in ran)
            every = max(max(l[i] for l in ran) - min(l[i] for l in ran) for i in range(common))
            spread = f"{first:.1e} / {every:.1e}"
        print(f"| {MODELS[model][0]} | {n} | " + " | ".join(secs) + " | " + " | ".join(mems)
              + f" | {ratio(coop)} | {ratio(floor)} | {spread} |")
    if scoring:
        print("\nScoring 10 hard templates x all classes (one encode_template_batch pass, no autograd):")
        for model, n, secs in scoring:
            ours = by.get((model, n, "ours"))
            step = ours.seconds if ours and not ours.skipped else float("nan")
            stage_steps = math.ceil(16 * n / args.batch)  # one epoch of 16 shots per class
            stage = stage_steps * step
            round_s = secs + args.llm_call_s
            print(f"  {MODELS[model][0]:<16} {n:>5} classes: {secs:.3f} s = {secs / step:.2f} steps of ours; "
                  f"an LLM round (scoring + {args.llm_call_s:g} s call) = {100 * round_s / stage:.1f} % of a "
                  f"{stage_steps}-step stage (one 16-shot epoch)")


if __name__ == "__main__":
    raise SystemExit(main())
