"""One answer from several photos of a product: each attribute's candidates scored on every photo, fused.

The endpoint scores an attribute's vocabulary on each photo (summed token log-likelihoods, see
``endpoint/scoring.py``). Each photo's scores become that photo's calibrated
log-probabilities (the model's temperature); the fused score of a value is their sum over the
photos (a product of experts: a photo that cannot see the attribute is nearly uniform and barely
moves the sum, a photo that sees it decides), and the fused confidence is the softmax of the sums
at the fusion temperature (``FusionCalibration``, fitted on several-photo validation products by
``make multi-photo-bench``'s training; 1.0 when a model has none). ``photos_agreed`` counts the
photos whose own most probable value is the fused one.

Pure Python, no torch: the endpoint, the benchmark and the tests share this one rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, Field

from describer_rules.answers import format_answer
from describer_rules.confidence import MAX_ALTERNATIVES, softmax
from describer_rules.contracts import Alternative, AttributeAnswer


class FusionCalibration(BaseModel):
    """The temperature fused scores are divided by (``describer_model.json`` ``fusion``)."""

    temperature: float = Field(default=1.0, gt=0.0)
    products: int = Field(default=0, ge=0, description="Several-photo products it was fitted on")


class FusedScores(BaseModel):
    probabilities: list[float] = Field(description="Fused probability of each value, in input order")
    best: int = Field(description="Index of the most probable value")
    photos_agreed: int = Field(ge=0, description="Photos whose own most probable value is the best one")


def log_probabilities(scores: Sequence[float], temperature: float) -> list[float]:
    return [math.log(max(p, 1e-300)) for p in softmax(scores, temperature)]


def fuse_scores(
    per_photo: Sequence[Sequence[float]], temperature: float, fusion: FusionCalibration | None = None
) -> FusedScores:
    """Fuse one attribute's candidate scores, one list per photo (every list in the same value order)."""
    if not per_photo:
        raise ValueError("no photo to fuse")
    width = len(per_photo[0])
    if width == 0 or any(len(scores) != width for scores in per_photo):
        raise ValueError("every photo must score the same, non-empty list of values")
    summed = [0.0] * width
    agreeing: list[int] = []
    for scores in per_photo:
        logs = log_probabilities(scores, temperature)
        summed = [total + value for total, value in zip(summed, logs, strict=True)]
        agreeing.append(max(range(width), key=logs.__getitem__))
    probabilities = softmax(summed, (fusion or FusionCalibration()).temperature)
    best = max(range(width), key=probabilities.__getitem__)
    return FusedScores(
        probabilities=probabilities, best=best, photos_agreed=sum(1 for index in agreeing if index == best)
    )


class ScoredCandidates(Protocol):
    """One photo's scores of an attribute's values (the endpoint's ``CandidateScores``)."""

    @property
    def values(self) -> Sequence[str]: ...

    @property
    def scores(self) -> Sequence[float]: ...


def fuse_answers(
    per_photo: Sequence[tuple[Sequence[AttributeAnswer], Sequence[ScoredCandidates | None]]],
    temperature: float,
    fusion: FusionCalibration | None = None,
) -> list[AttributeAnswer]:
    """One answer per question from every photo's answers and candidate scores (same question order).

    A scored question gets the fused value and confidence; a generated one (no vocabulary) keeps the
    first photo's answer. Both say how many photos agreed.
    """
    if not per_photo:
        raise ValueError("no photo to fuse")
    fused: list[AttributeAnswer] = []
    for index, first in enumerate(per_photo[0][0]):
        candidates = [photo_candidates[index] for _, photo_candidates in per_photo]
        if any(candidate is None for candidate in candidates):
            agreed = sum(1 for answers, _ in per_photo if answers[index].value == first.value)
            fused.append(first.model_copy(update={"photos_agreed": agreed}))
            continue
        scored = [candidate for candidate in candidates if candidate is not None]
        values = scored[0].values
        result = fuse_scores([candidate.scores for candidate in scored], temperature, fusion)
        ranked = sorted(range(len(values)), key=lambda option: -result.probabilities[option])
        fused.append(
            AttributeAnswer(
                attribute=first.attribute,
                value=values[result.best],
                raw=format_answer(first.attribute, values[result.best]),
                known=True,
                confidence=result.probabilities[result.best],
                alternatives=[
                    Alternative(value=values[option], confidence=result.probabilities[option])
                    for option in ranked[1 : 1 + MAX_ALTERNATIVES]
                ],
                photos_agreed=result.photos_agreed,
            )
        )
    return fused
