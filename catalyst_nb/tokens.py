"""A uniform view over the two tokenizer families open_clip uses.

Prompt learning needs more than ``tokenizer(texts)``: it must tokenize *pieces* of a prompt (the context
words, the class name, the closing period) without start/end markers, assemble them itself, and decode
token ids back to text when the soft context is projected onto the vocabulary.  open_clip's native BPE
tokenizer and its Hugging Face wrapper expose these operations under different names; this adapter gives
both the same five methods so that the rest of the library never branches on the tokenizer kind.

Duck typing keeps this module free of an ``open_clip`` import (``backbone`` is the only module that has
one).  ``wrap()`` is tested to reproduce the wrapped tokenizer's own output exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

__all__ = ["TokenizerAdapter"]


@dataclass(frozen=True)
class TokenizerAdapter:
    """Encode, wrap and decode token ids for either open_clip tokenizer kind.

    Attributes:
        kind: ``"native"`` (open_clip's CLIP BPE tokenizer) or ``"hf"`` (a Hugging Face tokenizer).
        start_id / end_id / pad_id: the markers the tower expects around and after a prompt.
        context_length: the longest sequence (markers included) the text tower accepts.
        excluded_ids: ids that a projected context must never decode to (markers, padding, unused slots).
        unk_id: the id a word-piece vocabulary gives to text it cannot read (``None`` for byte-level BPE,
            which reads any text).
    """

    tokenizer: Any = field(repr=False)
    kind: str
    start_id: int
    end_id: int
    pad_id: int
    context_length: int
    vocab_size: int
    excluded_ids: tuple[int, ...] = field(repr=False)
    unk_id: int | None = None

    @classmethod
    def wrap_tokenizer(cls, tokenizer: Any) -> "TokenizerAdapter":
        """Build the adapter for an open_clip tokenizer object (native or Hugging Face)."""
        if hasattr(tokenizer, "sot_token_id"):
            return cls(
                tokenizer=tokenizer,
                kind="native",
                start_id=int(tokenizer.sot_token_id),
                end_id=int(tokenizer.eot_token_id),
                pad_id=0,
                context_length=int(tokenizer.context_length),
                vocab_size=len(tokenizer.encoder),
                excluded_ids=tuple(int(i) for i in tokenizer.all_special_ids),
            )
        hf = getattr(tokenizer, "tokenizer", None)
        if hf is not None and hasattr(hf, "convert_ids_to_tokens"):
            start = hf.cls_token_id if hf.cls_token_id is not None else hf.bos_token_id
            end = hf.sep_token_id if hf.sep_token_id is not None else hf.eos_token_id
            if start is None or end is None or hf.pad_token_id is None:
                raise ValueError(
                    f"Hugging Face tokenizer {type(hf).__name__} lacks start/end/pad tokens; "
                    "prompt learning needs all three"
                )
            vocab = hf.get_vocab()
            # BERT-style vocabularies reserve "[unused17]"-like slots and other bracketed specials that
            # were never trained; a projection landing there would be meaningless text.
            excluded = set(int(i) for i in hf.all_special_ids)
            excluded.update(i for tok, i in vocab.items() if tok.startswith("[") and tok.endswith("]"))
            return cls(
                tokenizer=tokenizer,
                kind="hf",
                start_id=int(start),
                end_id=int(end),
                pad_id=int(hf.pad_token_id),
                context_length=int(tokenizer.context_length),
                vocab_size=len(vocab),
                excluded_ids=tuple(sorted(excluded)),
                unk_id=None if hf.unk_token_id is None else int(hf.unk_token_id),
            )
        raise TypeError(f"unsupported tokenizer type {type(tokenizer).__name__}")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without start/end markers, cleaned the way the tokenizer cleans."""
        if self.kind == "native":
            return list(self.tokenizer.encode(text))
        clean = getattr(self.tokenizer, "clean_fn", None)
        if clean is not None:
            text = clean(text)
        return list(self.tokenizer.tokenizer.encode(text, add_special_tokens=False))

    def unknown_words(self, text: str) -> list[str]:
        """The words of ``text`` that the vocabulary cannot read (they become the unknown token), in order.

        Such words all look alike to the text tower: two class names made only of them get the same
        prompt, and a template's unknown word carries no meaning.
        """
        if self.unk_id is None:
            return []
        return [word for word in text.split() if self.unk_id in self.encode(word)]

    def wrap(self, ids: Sequence[int], length: int | None = None) -> torch.Tensor:
        """``[start] + ids + [end]`` padded to ``length`` (default: the context length).

        Raises ValueError when the prompt does not fit, instead of silently cutting it as the
        tokenizers do: a cut prompt would lose its end marker and pool the wrong position.
        """
        length = self.context_length if length is None else length
        seq = [self.start_id, *ids, self.end_id]
        if len(seq) > length:
            raise ValueError(
                f"prompt needs {len(seq)} tokens with its markers but only {length} fit "
                f"(context length {self.context_length})"
            )
        return torch.tensor(seq + [self.pad_id] * (length - len(seq)), dtype=torch.long)

    def decode(self, ids: Sequence[int]) -> str:
        """Text for token ids, with the tokenizer's own joining rules (BPE word ends, WordPiece ``##``)."""
        ids = [int(i) for i in ids]
        if self.kind == "native":
            return self.tokenizer.decode(ids).strip()
        return self.tokenizer.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        """The raw vocabulary entries for ids (for inspection widgets: shows word pieces as they are)."""
        ids = [int(i) for i in ids]
        if self.kind == "native":
            return [self.tokenizer.decoder[i] for i in ids]
        return list(self.tokenizer.tokenizer.convert_ids_to_tokens(ids))

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Tokenize full prompts exactly as the wrapped open_clip tokenizer does."""
        return self.tokenizer(texts)
