"""Confidence of a scored answer: the endpoint's calibration and the pipeline's review rule.

The endpoint scores every value of an attribute's vocabulary and turns the scores into
probabilities with a softmax at the model's calibrated temperature (``Calibration``, stored in the
model dir's ``describer_model.json`` under ``calibration``). The pipeline sends a product to review
when an attribute's confidence is below ``review_threshold`` or its value is outside the vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

CONFIDENCE_DECIMALS = 3
# How many runner-up values an answer carries.
MAX_ALTERNATIVES = 2


class Calibration(BaseModel):
    """A temperature per attribute and one for the rest, fitted on the validation split
    (``training.calibration``)."""

    temperature: float = Field(default=1.0, gt=0.0, description="Scores are divided by it before the softmax")
    temperatures: dict[str, float] = Field(
        default_factory=dict,
        description="'<Category>/<Attribute>' -> its own temperature, shrunk toward `temperature`; "
        "an attribute not listed uses `temperature`",
    )
    split: str | None = Field(default=None, description="The split it was fitted on")
    questions: int = Field(default=0, ge=0, description="Scored questions it was fitted on")
    nll_before: float | None = Field(
        default=None, description="Mean negative log-likelihood at temperature 1"
    )
    nll_after: float | None = Field(
        default=None, description="Mean negative log-likelihood at the fitted one"
    )

    def temperature_for(self, attribute: str, category: str | None = None) -> float:
        return self.temperatures.get(calibration_key(category, attribute), self.temperature)


def calibration_key(category: str | None, attribute: str) -> str:
    """How ``Calibration.temperatures`` names an attribute of a category: 'Jeans/Waist Rise'."""
    return f"{category or ''}/{attribute}"


def softmax(scores: Sequence[float], temperature: float = 1.0) -> list[float]:
    """Probabilities of ``scores`` (log-likelihoods) divided by ``temperature``."""
    scaled = [score / temperature for score in scores]
    top = max(scaled)
    weights = [math.exp(value - top) for value in scaled]
    total = sum(weights)
    return [weight / total for weight in weights]


def rounded(confidence: float) -> float:
    return round(confidence, CONFIDENCE_DECIMALS)


def needs_review(
    confidence: Mapping[str, float],
    unknown_attributes: Sequence[str],
    threshold: float,
    unscored_attributes: Sequence[str] = (),
) -> bool:
    """True when a value is outside the vocabulary, an attribute's confidence is below ``threshold``, or
    an answer has no calibrated confidence at all (generated: the model was not trained to score it)."""
    return (
        bool(unknown_attributes)
        or bool(unscored_attributes)
        or any(value < threshold for value in confidence.values())
    )
