"""The endpoint's own answers to a prepared split: what evaluation and calibration measure.

Each product image goes through ``DescriberModel.image_features`` once and its questions through
``DescriberModel.score_and_answer``, the code that serves product requests, so evaluation measures
exactly what is served and calibration fits the scores the endpoint computes
(``calibrate_model_dir``: the validation split's scores -> a temperature per attribute in the model dir).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from describer_rules.catalogue import ARTICLE_TYPE_ATTRIBUTE, GENERIC_CATEGORY
from describer_rules.confidence import Calibration, calibration_key
from describer_rules.contracts import AttributeAnswer, Question
from endpoint.model import DescriberModel
from endpoint.scoring import CandidateScores
from training.calibration import CALIBRATION_SPLIT, ScoredQuestion, calibration_from, write_calibration
from training.dataset import read_qa_rows
from training.modeling import group_by_image


@dataclass(frozen=True)
class RowAnswer:
    row: dict[str, str]
    answer: AttributeAnswer
    candidates: CandidateScores | None  # None when the answer was generated

    @property
    def correct(self) -> bool:
        return self.answer.value == self.row["value"]

    def scored_question(self) -> ScoredQuestion | None:
        """The scores with the true value's position, when the true value was a candidate."""
        if self.candidates is None or self.row["value"] not in self.candidates.values:
            return None
        return ScoredQuestion(
            tuple(self.candidates.scores),
            self.candidates.values.index(self.row["value"]),
            key=calibration_key(asked_category(self.row), self.candidates.attribute),
        )


def answer_rows(
    model: DescriberModel, rows: Sequence[dict[str, str]], data_dir: Path, progress: bool = True
) -> list[RowAnswer]:
    """The served answer to every Q/A row, in row order; one vision pass per image."""
    by_row: dict[int, RowAnswer] = {}
    positions = {id(row): index for index, row in enumerate(rows)}
    items = group_by_image(rows, data_dir)
    for item in tqdm(items, desc="answering", unit="product", disable=not progress):
        _, features = model.image_features(item.image.read_bytes())
        # Asked as the pipeline asks: the article type of the generic category (Prepare), the
        # rest of the product's category (the Map); the second call finds the features cached.
        for category in dict.fromkeys(asked_category(row) for row in item.rows):
            rows_asked = [row for row in item.rows if asked_category(row) == category]
            questions = [Question(attribute=row["attribute"], question=row["question"]) for row in rows_asked]
            answers, candidates = model.score_and_answer(features, questions, category)
            for row, answer, scores in zip(rows_asked, answers, candidates, strict=True):
                by_row[positions[id(row)]] = RowAnswer(row, answer, scores)
    return [by_row[index] for index in range(len(rows))]


def asked_category(row: dict[str, str]) -> str:
    """The category a Q/A row's question is asked with (the article type: generic's)."""
    return GENERIC_CATEGORY if row["attribute"] == ARTICLE_TYPE_ATTRIBUTE else row["article_type"]


def scored_questions(answers: Sequence[RowAnswer]) -> list[ScoredQuestion]:
    return [question for answer in answers if (question := answer.scored_question()) is not None]


def calibrate_model_dir(model_dir: Path, data_dir: Path, progress: bool = True) -> Calibration:
    """Fit the temperature on ``data_dir``'s validation split and store it in ``model_dir``."""
    model = DescriberModel.load(model_dir)
    rows = read_qa_rows(Path(data_dir) / f"vqa_{CALIBRATION_SPLIT}.csv")
    calibration = calibration_from(
        scored_questions(answer_rows(model, rows, data_dir, progress)), CALIBRATION_SPLIT
    )
    write_calibration(model_dir, calibration)
    return calibration
