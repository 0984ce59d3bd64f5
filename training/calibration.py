"""Calibration of the endpoint's confidences, and the measures of how well they are calibrated.

``fit_temperature`` finds the temperature that minimises the negative log-likelihood of the true
values over the validation split's scored questions (temperature scaling, Guo et al. 2017): it
changes no answer, only how sure the answers say they are. ``calibration_from`` fits one over all
questions and one per attribute of a category ('Jeans/Waist Rise'), each shrunk toward the global
one in log space by the weight n / (n + SHRINKAGE_QUESTIONS) of its n validation answers: an
attribute seen rarely keeps close to the global temperature, a well-sampled one gets its own.
``calibrate_model_dir`` runs the endpoint's own scoring (``DescriberModel.answer_questions``) on a
prepared data dir's ``vqa_val.csv`` and stores the result in the model dir's
``describer_model.json``; training and the demo model call it, and evaluation measures on the test
split what it achieved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from describer_rules.confidence import Calibration, softmax
from training.model_dir import METADATA_FILE, read_metadata

ECE_BINS = 10
# Shares of the least confident answers sent to review, for accuracy against coverage.
REVIEW_SHARES = (0.05, 0.10, 0.20)
# Review thresholds whose effect evaluation reports (the ReviewThreshold parameter's candidates).
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
CALIBRATION_SPLIT = "val"
# The search range of 1/temperature; the negative log-likelihood is convex in it.
_MIN_INVERSE, _MAX_INVERSE = 1e-3, 1e3


# Validation answers at which an attribute's own temperature and the global one weigh the same.
SHRINKAGE_QUESTIONS = 50


@dataclass(frozen=True)
class ScoredQuestion:
    """The candidate scores of one question and which candidate is the true value."""

    scores: tuple[float, ...]
    truth: int
    key: str = ""  # calibration_key(category, attribute): its own temperature is fitted by this key


def mean_nll(questions: Sequence[ScoredQuestion], temperature: float) -> float:
    total = 0.0
    for question in questions:
        probability = softmax(question.scores, temperature)[question.truth]
        total -= math.log(max(probability, 1e-300))
    return total / len(questions)


def fit_temperature(questions: Sequence[ScoredQuestion], iterations: int = 80) -> float:
    """The temperature with the smallest mean negative log-likelihood (golden-section search)."""
    if not questions:
        raise ValueError("no scored questions to fit a temperature on")
    low, high = math.log(_MIN_INVERSE), math.log(_MAX_INVERSE)
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_inverse: float) -> float:
        return mean_nll(questions, 1.0 / math.exp(log_inverse))

    left, right = high - ratio * (high - low), low + ratio * (high - low)
    left_loss, right_loss = loss(left), loss(right)
    for _ in range(iterations):
        if left_loss <= right_loss:
            high, right, right_loss = right, left, left_loss
            left = high - ratio * (high - low)
            left_loss = loss(left)
        else:
            low, left, left_loss = left, right, right_loss
            right = low + ratio * (high - low)
            right_loss = loss(right)
    return 1.0 / math.exp((low + high) / 2)


def shrunk_temperature(own: float, questions: int, global_temperature: float) -> float:
    """``own`` pulled toward ``global_temperature`` (geometric mean weighted n : SHRINKAGE_QUESTIONS)."""
    weight = questions / (questions + SHRINKAGE_QUESTIONS)
    return math.exp(weight * math.log(own) + (1 - weight) * math.log(global_temperature))


def calibration_from(questions: Sequence[ScoredQuestion], split: str) -> Calibration:
    temperature = fit_temperature(questions)
    by_key: dict[str, list[ScoredQuestion]] = {}
    for question in questions:
        if question.key:
            by_key.setdefault(question.key, []).append(question)
    temperatures = {
        key: shrunk_temperature(fit_temperature(members), len(members), temperature)
        for key, members in sorted(by_key.items())
    }
    calibration = Calibration(temperature=temperature, temperatures=temperatures, split=split)
    return calibration.model_copy(
        update={
            "questions": len(questions),
            "nll_before": mean_nll(questions, 1.0),
            "nll_after": calibrated_nll(questions, calibration),
        }
    )


def calibrated_nll(questions: Sequence[ScoredQuestion], calibration: Calibration) -> float:
    """Mean negative log-likelihood with each question's own attribute temperature."""
    total = 0.0
    for question in questions:
        temperature = calibration.temperatures.get(question.key, calibration.temperature)
        total -= math.log(max(softmax(question.scores, temperature)[question.truth], 1e-300))
    return total / len(questions)


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    confidence: float  # mean confidence of the answers in the bin
    accuracy: float


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS
) -> list[ReliabilityBin]:
    """Equal-width confidence bins (the last one includes 1.0)."""
    members: list[list[int]] = [[] for _ in range(bins)]
    for index, confidence in enumerate(confidences):
        members[min(int(confidence * bins), bins - 1)].append(index)
    result = []
    for number, indices in enumerate(members):
        count = len(indices)
        result.append(
            ReliabilityBin(
                lower=number / bins,
                upper=(number + 1) / bins,
                count=count,
                confidence=sum(confidences[i] for i in indices) / count if count else 0.0,
                accuracy=sum(correct[i] for i in indices) / count if count else 0.0,
            )
        )
    return result


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS
) -> float:
    """Sum over bins of (share of answers) x |accuracy - mean confidence|."""
    total = len(confidences)
    if not total:
        return 0.0
    return sum(
        item.count / total * abs(item.accuracy - item.confidence)
        for item in reliability_bins(confidences, correct, bins)
    )


def accuracy_at_coverage(confidences: Sequence[float], correct: Sequence[bool], review_share: float) -> float:
    """Accuracy of the answers kept when the least confident ``review_share`` of them go to review."""
    ranked = sorted(range(len(confidences)), key=lambda index: confidences[index], reverse=True)
    kept = ranked[: max(1, round(len(ranked) * (1 - review_share)))] if ranked else []
    return sum(correct[index] for index in kept) / len(kept) if kept else 0.0


def threshold_for_review_share(confidences: Sequence[float], review_share: float) -> float:
    """The confidence below which about ``review_share`` of the answers fall."""
    ranked = sorted(confidences)
    if not ranked:
        return 0.0
    return ranked[min(len(ranked) - 1, int(len(ranked) * review_share))]


def write_calibration(model_dir: Path, calibration: Calibration) -> None:
    """Store ``calibration`` in the model dir's metadata, where the endpoint reads it at load."""
    metadata = read_metadata(model_dir).model_copy(update={"calibration": calibration})
    (Path(model_dir) / METADATA_FILE).write_text(metadata.model_dump_json(indent=2) + "\n", encoding="utf-8")
