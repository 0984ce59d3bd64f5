"""Temperature scaling and the calibration measures, on scores whose true calibration is known."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from describer_rules.confidence import Calibration, softmax
from training.calibration import (
    ScoredQuestion,
    accuracy_at_coverage,
    calibration_from,
    expected_calibration_error,
    fit_temperature,
    mean_nll,
    reliability_bins,
    threshold_for_review_share,
    write_calibration,
)
from training.model_dir import METADATA_FILE, ModelMetadata, read_metadata


def _questions_drawn_at(
    temperature: float, count: int = 3000, seed: int = 0, key: str = ""
) -> list[ScoredQuestion]:
    """Scores whose truth is drawn from softmax(scores / temperature): that temperature is the right one."""
    rng = random.Random(seed)
    questions = []
    for _ in range(count):
        scores = tuple(rng.gauss(0.0, 3.0) for _ in range(rng.choice((2, 4, 6))))
        truth = rng.choices(range(len(scores)), weights=softmax(scores, temperature))[0]
        questions.append(ScoredQuestion(scores, truth, key))
    return questions


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_the_truths_were_drawn_at(true_temperature: float) -> None:
    questions = _questions_drawn_at(true_temperature)
    fitted = fit_temperature(questions)
    assert fitted == pytest.approx(true_temperature, rel=0.12)
    assert mean_nll(questions, fitted) <= mean_nll(questions, true_temperature) + 1e-9


def test_calibration_records_where_it_was_fitted_and_what_it_gained() -> None:
    calibration = calibration_from(_questions_drawn_at(2.0, 1000), "val")
    assert calibration.split == "val" and calibration.questions == 1000
    assert calibration.nll_after is not None and calibration.nll_before is not None
    assert calibration.nll_after < calibration.nll_before


def test_fitting_on_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no scored questions"):
        fit_temperature([])


def test_a_calibrated_temperature_gives_a_small_expected_calibration_error() -> None:
    questions = _questions_drawn_at(2.0, 4000, seed=1)
    for temperature, small in ((2.0, True), (0.3, False)):
        confidences, correct = [], []
        for question in questions:
            probabilities = softmax(question.scores, temperature)
            best = max(range(len(probabilities)), key=probabilities.__getitem__)
            confidences.append(probabilities[best])
            correct.append(best == question.truth)
        assert (expected_calibration_error(confidences, correct) < 0.03) is small


def test_expected_calibration_error_by_hand() -> None:
    # Bin [0.9, 1.0]: confidence 0.95, accuracy 0.5; bin [0.6, 0.7): 0.65 and 1.0.
    confidences = [0.95, 0.95, 0.65, 0.65]
    correct = [True, False, True, True]
    bins = reliability_bins(confidences, correct)
    assert len(bins) == 10 and sum(item.count for item in bins) == 4
    assert bins[9].count == 2 and bins[9].accuracy == 0.5
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.5 * 0.45 + 0.5 * 0.35)
    assert reliability_bins([1.0], [True])[9].count == 1  # 1.0 belongs to the last bin


def test_accuracy_against_coverage_drops_the_least_confident() -> None:
    confidences = [0.99, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    correct = [True] * 7 + [False, False, True]
    assert accuracy_at_coverage(confidences, correct, 0.0) == pytest.approx(0.8)
    assert accuracy_at_coverage(confidences, correct, 0.2) == pytest.approx(7 / 8)
    assert accuracy_at_coverage(confidences, correct, 0.3) == pytest.approx(1.0)
    assert threshold_for_review_share(confidences, 0.2) == 0.5


def test_the_temperature_is_stored_in_the_model_dirs_metadata(tmp_path: Path) -> None:
    metadata = ModelMetadata(model_id="describer-test", base_model="tiny", seed=1)
    (tmp_path / METADATA_FILE).write_text(metadata.model_dump_json())
    write_calibration(tmp_path, Calibration(temperature=1.7, split="val", questions=12))
    stored = read_metadata(tmp_path)
    assert stored.model_id == "describer-test" and stored.seed == 1
    assert stored.calibration == Calibration(temperature=1.7, split="val", questions=12)
    assert json.loads((tmp_path / METADATA_FILE).read_text())["calibration"]["temperature"] == 1.7


def test_softmax_at_a_temperature() -> None:
    assert softmax([math.log(3), 0.0]) == pytest.approx([0.75, 0.25])
    assert softmax([2 * math.log(3), 0.0], temperature=2.0) == pytest.approx([0.75, 0.25])
    assert softmax([-1000.0, -1001.0]) == pytest.approx([1 / (1 + math.exp(-1)), 1 - 1 / (1 + math.exp(-1))])


def test_each_attribute_gets_its_own_temperature_shrunk_toward_the_global_one() -> None:
    questions = (
        _questions_drawn_at(0.5, count=2000, seed=1, key="Jeans/Fit")
        + _questions_drawn_at(2.5, count=2000, seed=2, key="Tshirts/Fit")
        + _questions_drawn_at(4.0, count=10, seed=3, key="Shirts/Collar")
    )
    calibration = calibration_from(questions, "val")
    assert set(calibration.temperatures) == {"Jeans/Fit", "Tshirts/Fit", "Shirts/Collar"}
    # Well-sampled attributes get (about) the temperature their truths were drawn at ...
    assert calibration.temperatures["Jeans/Fit"] == pytest.approx(0.5, rel=0.15)
    assert calibration.temperature_for("Fit", "Tshirts") == pytest.approx(2.5, rel=0.15)
    # ... ten answers weigh 10 : 50 against the global temperature.
    own = fit_temperature(questions[-10:])
    assert calibration.temperatures["Shirts/Collar"] == pytest.approx(
        math.exp((10 * math.log(own) + 50 * math.log(calibration.temperature)) / 60)
    )
    assert calibration.temperature_for("Fit", "Dresses") == calibration.temperature  # not fitted: global
    assert calibration.nll_after is not None and calibration.nll_after < mean_nll(
        questions, calibration.temperature
    )
