"""Score templates the way a restart would use them: as loaded into the learner's context.

A hard prompt such as ``"a close-up studio photo of a {} on a white background."`` is not what the
context holds after ``load_text``: with ``n_ctx=4`` and the class at the end it becomes
``"photo of a {}."`` (words farthest from the class cut, words after ``{}`` dropped).  Choosing a restart
by the score of the full prompt would compare the wrong things, so :class:`TemplateScorer` scores both:
the template as loaded (what decisions use) and the raw hard prompt (shown beside it where they differ).

A template is scored once per scorer and remembered (a round's candidates mostly repeat the last round's);
several soft contexts are encoded in one batched no-grad pass (:meth:`PromptLearner.text_features_for`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import torch

from catalyst_nb.evaluation import EvalResult, evaluate_classifier
from catalyst_nb.features import FeatureSet
from catalyst_nb.prompt_learner import LoadReport, PromptLearner
from catalyst_nb.template_scoring import encode_template_batch, template_too_long

__all__ = ["TemplateScore", "TemplateScorer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TemplateScore:
    """Scores of one template on a split: as loaded into the context, and as the raw hard prompt.

    ``error`` is set (and the scores are ``None``) when the template cannot be loaded at all.
    """

    template: str
    loss: float | None
    accuracy: float | None
    raw_loss: float | None
    raw_accuracy: float | None
    loaded: str | None
    report: LoadReport | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class TemplateScorer:
    """Scores templates, and the current soft prompt, on one split with one learner's layout.

    Args:
        learner: whose layout (``n_ctx``, class position, class-specific or not) defines "as loaded".
        split: the scoring split (never the split whose accuracy is reported).
        chunk: contexts encoded per batched pass (:meth:`contexts`).
        raw: also score the raw hard prompt of each template.
    """

    def __init__(self, learner: PromptLearner, split: FeatureSet, *, chunk: int = 8, raw: bool = True) -> None:
        if tuple(split.classnames) != tuple(learner.classnames):
            raise ValueError(
                f"scoring split {split.name!r} has classes {list(split.classnames)[:5]}..., the learner has "
                f"{list(learner.classnames)[:5]}...; score on a split of the training classes"
            )
        if len(split) == 0:
            raise ValueError(f"scoring split {split.name!r} is empty")
        self.learner = learner
        self.split = split.to(learner.ctx.device)
        self.chunk = int(chunk)
        self.raw = bool(raw)
        self._scale = learner.clip.logit_scale
        self._known: dict[str, TemplateScore] = {}  # template -> its score (see score())

    def _evaluate(self, weights: torch.Tensor) -> EvalResult:
        return evaluate_classifier(weights, self.split, logit_scale=self._scale)

    @torch.no_grad()
    def current(self) -> EvalResult:
        """Loss and accuracy of the soft prompt as it is now."""
        return self._evaluate(self.learner.text_features())

    @torch.no_grad()
    def contexts(self, contexts: torch.Tensor) -> list[EvalResult]:
        """Loss and accuracy for each of several context tensors (``[n, *ctx.shape]``)."""
        feats = self.learner.text_features_for(contexts, chunk=self.chunk)
        return [self._evaluate(f) for f in feats]

    def _raw(self, templates: Sequence[str]) -> dict[str, EvalResult]:
        """Each template as the hard prompt it is, all in one batched pass (those too long are left out)."""
        clip, names = self.learner.clip, self.split.classnames
        usable = []
        for template in dict.fromkeys(templates):
            problem = template_too_long(clip, template, names)
            if problem:
                log.warning("raw prompt %r could not be scored: %s", template, problem)
            else:
                usable.append(template)
        if not usable:
            return {}
        weights = encode_template_batch(clip, usable, names)  # DEFAULT_CHUNK prompts per tower call
        return {t: self._evaluate(w) for t, w in zip(usable, weights)}

    @torch.no_grad()
    def score(self, templates: Sequence[str]) -> list[TemplateScore]:
        """Score each template as loaded and, if ``raw``, as the hard prompt it is (one result each).

        Each template is scored on its own and remembered.  A round's candidates mostly repeat the last
        round's, so a template met again costs nothing; and a template's score never depends on the
        templates it came with: a batched pass rounds differently with the batch's size (about 1e-7), so
        a resumed run, which starts with nothing remembered, would otherwise score a template differently
        from the uninterrupted run.  One template is one pass over the split's classes, which costs about
        what its share of a batched pass did.
        """
        return [self._score_one(t) for t in templates]

    def _score_one(self, template: str) -> TemplateScore:
        known = self._known.get(template)
        if known is not None:
            return known
        try:
            ids, report = self.learner.fit_text(template)
        except ValueError as exc:
            result = TemplateScore(template, None, None, None, None, None, None, error=str(exc))
        else:
            loaded = self.contexts(self.learner.context_from_ids(ids).unsqueeze(0))[0]
            raw = self._raw([template]).get(template) if self.raw else None
            result = TemplateScore(template, loaded.loss, loaded.accuracy, raw.loss if raw else None,
                                   raw.accuracy if raw else None, self.learner.loaded_template(ids), report)
        self._known[template] = result
        return result
