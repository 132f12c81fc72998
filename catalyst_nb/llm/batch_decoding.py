"""Decode the ``n`` choices of one completion request as one batch, with llama.cpp's own decoder.

Why: a catalyst round asks the embedded Gemma for 8 samples of about ten tokens each.  Sent as 8 calls,
each token of each sample is one decoding step; decoded as one batch of 8 sequences, one step serves all
8 samples for about four steps' cost (47.5 against 11.1 ms on two threads: the weights are read once per
step, but the 262,144-word output layer is still computed for every sequence).  llama-cpp-python's server
answers one request at a time and ignores ``n``, hence this small decoder of our own over its low-level
bindings.

What makes it repeatable: each request starts from an empty cache, its prompt is evaluated once and its
cells shared by every choice (not copied), each choice samples with its own sampler chain seeded from
the request's seed and its index (:func:`choice_seed`), and a batch always holds exactly the request's
own choices, in index order, so that a rerun of a request decodes the same batches and draws the same
texts.  A request with more choices than ``max_choices`` is decoded in consecutive batches of at most
that many.

The sampler chain is llama-cpp-python's server's default one (repeat penalty 1.1 over the last 64
generated tokens, the prompt's not among them, top-k 40, then top-p, min-p 0.05, temperature, a seeded
draw; greedy at temperature 0), so that a choice is a sample from the same distribution as a call to
that server.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["BatchDecoder", "Choice", "SamplingParams", "choice_seed"]

# llama-cpp-python's server defaults for what a request does not set.
REPEAT_PENALTY = 1.1
PENALTY_LAST_N = 64
TOP_K = 40
MIN_P = 0.05
DEFAULT_TOP_P = 0.95
DEFAULT_TEMPERATURE = 0.8
DEFAULT_MAX_TOKENS = 16


def choice_seed(seed: int, index: int) -> int:
    """The sampling seed of choice ``index`` of a request seeded ``seed``: the seed itself for the first
    choice (so that ``n=1`` is an ordinary seeded call), a 32-bit hash of both for the others."""
    if index == 0:
        return seed & 0xFFFFFFFF
    digest = hashlib.blake2b(f"catalyst-choice:{seed}:{index}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class SamplingParams:
    """One request's sampling settings (``stop`` strings end a choice and are not part of its text)."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens!r}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")


@dataclass(frozen=True)
class Choice:
    """One decoded choice: its text (cut before a stop string), why it ended, and its token count."""

    text: str
    finish_reason: str
    completion_tokens: int


class _Stream:
    """One choice being decoded: its sampler chain, its tokens and text so far."""

    def __init__(self, decoder: BatchDecoder, params: SamplingParams, seed: int) -> None:
        import llama_cpp as ll

        self._ll = ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        self.chain = chain
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_penalties(
            decoder.n_vocab, PENALTY_LAST_N, REPEAT_PENALTY, 0.0, 0.0))
        if params.temperature == 0.0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
        else:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(TOP_K))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(params.top_p, 1))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_min_p(MIN_P, 1))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(params.temperature))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(seed))
        self.params = params
        self.decoder = decoder
        self.tokens: list[int] = []
        self.raw = b""
        self.text = ""
        self.finish_reason: str | None = None

    def take(self, token: int) -> None:
        """Add a sampled token; sets ``finish_reason`` when the choice ends with it."""
        self.tokens.append(token)
        if self._ll.llama_vocab_is_eog(self.decoder.vocab, token):
            self.finish_reason = "stop"
            return
        self.raw += self.decoder.piece(token)
        text = self.raw.decode("utf-8", "ignore")
        cut = min((i for i in (text.find(s) for s in self.params.stop if s) if i >= 0), default=-1)
        if cut >= 0:
            self.text, self.finish_reason = text[:cut], "stop"
        elif len(self.tokens) >= self.params.max_tokens:
            self.text, self.finish_reason = text, "length"
        else:
            self.text = text

    def close(self) -> None:
        if self.chain is not None:
            self._ll.llama_sampler_free(self.chain)
            self.chain = None

    def result(self) -> Choice:
        return Choice(self.text, self.finish_reason or "length", len(self.tokens))


class BatchDecoder:
    """A GGUF model loaded once, answering completion requests with all their choices decoded together.

    ``n_ctx`` is the cache size in tokens, shared by a request's choices (its prompt once, plus every
    choice's generated tokens); ``max_choices`` the most sequences decoded in one batch.
    """

    def __init__(self, model_path: str | os.PathLike[str], *, n_ctx: int = 2048, n_threads: int | None = None,
                 max_choices: int = 8, n_batch: int = 512) -> None:
        import llama_cpp as ll

        if max_choices < 1:
            raise ValueError(f"max_choices must be >= 1, got {max_choices!r}")
        self._ll = ll
        ll.llama_backend_init()
        ll.llama_log_set(_silent_log(), ctypes.c_void_p())  # the library's load report is not ours to show
        model = ll.llama_model_load_from_file(str(Path(model_path)).encode(), ll.llama_model_default_params())
        if not model:
            raise ValueError(f"could not load a model from {model_path}")
        self.model = model
        self.vocab = ll.llama_model_get_vocab(model)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        params = ll.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = max_choices
        params.kv_unified = True  # one cache: every choice shares the prompt's cells
        threads = n_threads or os.cpu_count() or 1
        params.n_threads = params.n_threads_batch = threads
        ctx = ll.llama_init_from_model(model, params)
        if not ctx:
            ll.llama_model_free(model)
            raise ValueError(f"could not make a context of {n_ctx} tokens for {model_path}")
        self.ctx = ctx
        self.memory = ll.llama_get_memory(ctx)
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.max_choices = max_choices
        self._batch = ll.llama_batch_init(max(n_batch, max_choices), 0, max_choices)
        self._pieces: dict[int, bytes] = {}

    # ---- tokens -----------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """The prompt's tokens, with the model's begin-of-text token where it adds one."""
        ll = self._ll
        data = text.encode("utf-8")
        size = len(data) + 8
        buf = (ll.llama_token * size)()
        n = ll.llama_tokenize(self.vocab, data, len(data), buf, size, True, True)
        if n < 0:
            size = -n
            buf = (ll.llama_token * size)()
            n = ll.llama_tokenize(self.vocab, data, len(data), buf, size, True, True)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        got = self._pieces.get(token)
        if got is None:
            buf = ctypes.create_string_buffer(64)
            n = self._ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            got = self._pieces[token] = buf.raw[:n]
        return got

    # ---- decoding ---------------------------------------------------------------------------------
    def _decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """One ``llama_decode`` of (token, position, sequence, wants logits) entries."""
        b = self._batch
        for i, (token, pos, seq, logits) in enumerate(entries):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        b.n_tokens = len(entries)
        code = self._ll.llama_decode(self.ctx, b)
        if code != 0:
            raise RuntimeError(f"llama_decode failed with code {code} (cache of {self.n_ctx} tokens full?)")

    def _load_prompt(self, prompt: list[int]) -> None:
        """Evaluate ``prompt`` into sequence 0 of an empty cache, in fixed chunks, with the last token's
        logits kept.  From scratch each time, not from the last request's cache: where a token's cells
        lie in the cache changes the order of the attention's sums, so a cache shaped by earlier requests
        could change a draw, and a request must give the same choices whatever came before it (a resumed
        run, a worker that ran other cells first).  The price is the prompt's evaluation, 0.1-0.2 s on two threads."""
        self._ll.llama_memory_clear(self.memory, True)
        for start in range(0, len(prompt), self.n_batch):
            chunk = prompt[start:start + self.n_batch]
            last = start + len(chunk) == len(prompt)
            self._decode([(t, start + i, 0, last and i == len(chunk) - 1) for i, t in enumerate(chunk)])

    def complete(self, prompt: str, n: int, params: SamplingParams) -> tuple[list[Choice], int]:
        """The request's ``n`` choices and its prompt's token count."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        tokens = self.tokenize(prompt)
        if not tokens:
            raise ValueError("the prompt has no tokens")
        room = self.n_ctx - len(tokens) - min(n, self.max_choices) * params.max_tokens
        if room < 0:
            raise ValueError(
                f"the prompt ({len(tokens)} tokens) and {min(n, self.max_choices)} choices of up to "
                f"{params.max_tokens} tokens do not fit the context of {self.n_ctx} tokens"
            )
        seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(4), "big")
        choices: list[Choice] = []
        for first in range(0, n, self.max_choices):
            count = min(self.max_choices, n - first)
            choices += self._complete_batch(tokens, [choice_seed(seed, first + i) for i in range(count)], params)
        return choices, len(tokens)

    def _complete_batch(self, tokens: list[int], seeds: list[int], params: SamplingParams) -> list[Choice]:
        ll = self._ll
        self._load_prompt(tokens)
        streams = [_Stream(self, params, seed) for seed in seeds]
        try:
            for seq in range(1, len(streams)):  # share the prompt's cells (no copy in a unified cache)
                ll.llama_memory_seq_cp(self.memory, 0, seq, 0, -1)
            for stream in streams:  # every choice's first token comes from the prompt's last logits
                stream.take(ll.llama_sampler_sample(stream.chain, self.ctx, -1))
            while True:
                active = [(seq, s) for seq, s in enumerate(streams) if s.finish_reason is None]
                if not active:
                    break
                self._decode([(s.tokens[-1], len(tokens) + len(s.tokens) - 1, seq, True) for seq, s in active])
                for index, (_, s) in enumerate(active):
                    s.take(ll.llama_sampler_sample(s.chain, self.ctx, index))
            return [s.result() for s in streams]
        finally:
            for s in streams:
                s.close()

    def close(self) -> None:
        ll = self._ll
        if getattr(self, "ctx", None):
            ll.llama_batch_free(self._batch)
            ll.llama_free(self.ctx)
            ll.llama_model_free(self.model)
            self.ctx = None


def _silent(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    return None


_SILENT_LOG = None  # the ctypes callback, made once and kept alive for as long as the library may call it


def _silent_log():
    global _SILENT_LOG
    if _SILENT_LOG is None:
        import llama_cpp as ll

        _SILENT_LOG = ll.llama_log_callback(_silent)
    return _SILENT_LOG
