"""Several photos, one answer: the fusion rule the endpoint and the multi-photo bench share."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from describer_rules.confidence import softmax
from describer_rules.contracts import AttributeAnswer
from describer_rules.fusion import FusionCalibration, fuse_answers, fuse_scores


@dataclass
class Candidates:
    attribute: str
    values: list[str]
    scores: list[float]


def test_one_photo_fuses_to_its_own_calibrated_probabilities() -> None:
    scores = [-1.0, -3.0, -2.0]
    fused = fuse_scores([scores], temperature=2.0)
    assert fused.probabilities == pytest.approx(softmax(scores, 2.0))
    assert fused.best == 0
    assert fused.photos_agreed == 1


def test_a_photo_that_sees_the_attribute_outweighs_ones_that_cannot() -> None:
    # Front and detail are nearly uniform (slightly wrong), the back sees the print clearly.
    front, detail, back = [-1.0, -1.1], [-1.0, -1.05], [-6.0, -0.5]
    fused = fuse_scores([front, detail, back], temperature=1.0)
    assert fused.best == 1
    assert fused.photos_agreed == 1
    assert sum(fused.probabilities) == pytest.approx(1.0)


def test_agreeing_photos_raise_the_confidence_and_the_fusion_temperature_tempers_it() -> None:
    photo = [-1.0, -2.0]
    alone = fuse_scores([photo], 1.0).probabilities[0]
    three = fuse_scores([photo, photo, photo], 1.0)
    assert three.probabilities[0] > alone
    assert three.photos_agreed == 3
    tempered = fuse_scores([photo, photo, photo], 1.0, FusionCalibration(temperature=3.0))
    assert tempered.probabilities[0] == pytest.approx(alone)


def test_photos_must_score_the_same_values() -> None:
    with pytest.raises(ValueError, match="same"):
        fuse_scores([[-1.0, -2.0], [-1.0]], 1.0)
    with pytest.raises(ValueError, match="no photo"):
        fuse_scores([], 1.0)


def _answer(attribute: str, value: str, confidence: float | None) -> AttributeAnswer:
    return AttributeAnswer(
        attribute=attribute, value=value, raw=value, known=confidence is not None, confidence=confidence
    )


def test_answers_are_fused_per_question_and_generated_ones_keep_the_first_photo() -> None:
    values = ["Solid", "Printed"]
    photos = [
        (
            [_answer("Pattern", "Solid", 0.55), _answer("Brand", "acme", None)],
            [Candidates("Pattern", values, [-1.0, -1.2]), None],
        ),
        (
            [_answer("Pattern", "Printed", 0.99), _answer("Brand", "acme", None)],
            [Candidates("Pattern", values, [-8.0, -0.01]), None],
        ),
        (
            [_answer("Pattern", "Solid", 0.52), _answer("Brand", "other", None)],
            [Candidates("Pattern", values, [-1.0, -1.1]), None],
        ),
    ]
    pattern, brand = fuse_answers(photos, temperature=1.0)
    assert pattern.value == "Printed"
    assert pattern.raw == "Pattern: Printed"
    assert pattern.known
    assert pattern.photos_agreed == 1
    expected = softmax(
        [
            sum(
                math.log(p) for p in (softmax(s, 1.0)[i] for s in ([-1.0, -1.2], [-8.0, -0.01], [-1.0, -1.1]))
            )
            for i in range(2)
        ]
    )
    assert pattern.confidence == pytest.approx(expected[1])
    assert [alternative.value for alternative in pattern.alternatives] == ["Solid"]
    assert brand.value == "acme"
    assert brand.photos_agreed == 2
