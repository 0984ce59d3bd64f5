"""Evaluation of a model directory on held-out products, through the endpoint's own answering code.

Every answer is the one the endpoint serves (``training.served_answers``: scored over the vocabulary, with
the model's calibrated confidence). Reported per (category, attribute): accuracy, their macro average, the
expected calibration error (10 bins) and the accuracy that remains when the least confident 5, 10
or 20 % of the answers go to review; the most common confusions; two baselines: always answering the
training split's most frequent value (per category and attribute), and the un-fine-tuned base model
behind the same code. Writes ``evaluation.json``, ``evaluation.png`` (accuracy) and
``reliability.png`` (the reliability diagram); ``print_report`` prints the tables (per category and
attribute, per category) and ends with ``categories: N``, ``macro accuracy: 0.NN``, ``expected
calibration error: 0.0NN`` and ``worst attribute ECE: 0.0NN (<Category>/<Attr>)``.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from describer_rules.catalogue import GENERIC_CATEGORY, Catalogue
from describer_rules.confidence import Calibration, needs_review
from endpoint.model import DescriberModel
from endpoint.vision_encoders import load_blip2
from training.calibration import (
    REVIEW_SHARES,
    THRESHOLDS,
    ReliabilityBin,
    accuracy_at_coverage,
    expected_calibration_error,
    reliability_bins,
    threshold_for_review_share,
)
from training.dataset import read_qa_rows
from training.model_dir import read_metadata
from training.served_answers import RowAnswer, answer_rows, asked_category
from training.tiny import build_base_model_dir, catalogue_texts


class CoveragePoint(BaseModel):
    """What remains when the least confident ``review_share`` of the answers go to review."""

    review_share: float
    threshold: float = Field(description="Answers below this confidence went to review")
    accuracy: float = Field(description="Accuracy of the answers kept")


class ThresholdPoint(BaseModel):
    """What a ``ReviewThreshold`` would do: how much goes to review, how good the rest is."""

    threshold: float
    answers_to_review: float = Field(description="Share of scored answers below the threshold")
    products_to_review: float = Field(description="Share of products that would need review (needs_review)")
    accuracy_kept: float = Field(description="Accuracy of the answers at or above it")


class AttributeScore(BaseModel):
    category: str = Field(description="The category asked (generic for the article-type question)")
    attribute: str
    questions: int
    accuracy: float
    majority_baseline: float
    base_model: float | None
    expected_calibration_error: float | None = Field(description="10 bins; None when nothing was scored")
    coverage: list[CoveragePoint] = Field(default_factory=list)


class CategoryScore(BaseModel):
    category: str
    products: int
    questions: int
    macro_accuracy: float = Field(description="Mean of the category's attribute accuracies")
    majority_baseline: float
    expected_calibration_error: float | None


class Confusion(BaseModel):
    attribute: str
    expected: str
    predicted: str
    count: int


class EvaluationReport(BaseModel):
    model_id: str
    split: str
    products: int
    questions: int
    attributes: list[AttributeScore] = Field(description="Per (category, attribute)")
    categories: list[CategoryScore] = Field(default_factory=list)
    macro_accuracy: float = Field(description="Mean over every (category, attribute) of its accuracy")
    majority_macro_accuracy: float
    base_macro_accuracy: float | None
    top_confusions: list[Confusion]
    calibration: Calibration = Field(
        description="The temperature the endpoint applied, and where it came from"
    )
    expected_calibration_error: float = Field(description="Over every scored answer, 10 bins")
    calibration_held_out: bool = Field(
        description="False when evaluated on the split the temperature was fitted on"
    )
    coverage: list[CoveragePoint] = Field(description="Over every scored answer")
    thresholds: list[ThresholdPoint] = Field(description="Candidate review thresholds")
    reliability: list[ReliabilityBin]


def _coverage(confidences: Sequence[float], correct: Sequence[bool]) -> list[CoveragePoint]:
    return [
        CoveragePoint(
            review_share=share,
            threshold=threshold_for_review_share(confidences, share),
            accuracy=accuracy_at_coverage(confidences, correct, share),
        )
        for share in REVIEW_SHARES
    ]


def _thresholds(scored: Sequence[RowAnswer]) -> list[ThresholdPoint]:
    by_product: dict[str, dict[str, float]] = defaultdict(dict)
    for answer in scored:
        by_product[answer.row["id"]][answer.row["attribute"]] = answer.answer.confidence or 0.0
    points = []
    for threshold in THRESHOLDS:
        kept = [answer.correct for answer in scored if (answer.answer.confidence or 0.0) >= threshold]
        flagged = [product for product in by_product.values() if needs_review(product, [], threshold)]
        points.append(
            ThresholdPoint(
                threshold=threshold,
                answers_to_review=1 - len(kept) / len(scored) if scored else 0.0,
                products_to_review=len(flagged) / len(by_product) if by_product else 0.0,
                accuracy_kept=_mean(kept),
            )
        )
    return points


def load_served_model(source: Path | str, catalogue: Catalogue, calibration: Calibration) -> DescriberModel:
    """A model dir, hub id or base dir behind the endpoint's code, with the evaluated catalogue."""
    from transformers import Blip2Processor

    model = load_blip2(source)
    return DescriberModel(
        model, Blip2Processor.from_pretrained(source), catalogue, str(source), calibration=calibration
    )


def _majority_key(row: dict[str, str]) -> tuple[str, str]:
    # The article type is what the Article Type question asks, so its baseline cannot know it.
    return (asked_category(row), row["attribute"])


def majority_answers(train_rows: Sequence[dict[str, str]]) -> dict[tuple[str, str], str]:
    """The training split's most frequent value per (category, attribute)."""
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for row in train_rows:
        counts[_majority_key(row)][row["value"]] += 1
    return {key: counter.most_common(1)[0][0] for key, counter in counts.items()}


def _hits_by_attribute(answers: Sequence[RowAnswer]) -> dict[tuple[str, str], list[bool]]:
    hits: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for answer in answers:
        hits[_majority_key(answer.row)].append(answer.correct)
    return hits


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def base_model_source(model_dir: Path, catalogue: Catalogue, work_dir: Path) -> Path | str:
    """The un-fine-tuned starting point: rebuilt from the preset and seed, or the hub id / dir."""
    metadata = read_metadata(model_dir)
    if metadata.preset:
        return build_base_model_dir(
            metadata.preset, work_dir / "base", seed=metadata.seed, extra_words=catalogue_texts(catalogue)
        )
    return metadata.base_model


def evaluate(
    model_dir: Path,
    data_dir: Path,
    *,
    split: str = "test",
    compare_base: bool = True,
    out_dir: Path | None = None,
    progress: bool = True,
) -> EvaluationReport:
    model_dir, data_dir = Path(model_dir), Path(data_dir)
    rows = read_qa_rows(data_dir / f"vqa_{split}.csv")
    if not rows:
        raise ValueError(f"no rows in {data_dir / f'vqa_{split}.csv'}")
    model = DescriberModel.load(model_dir)
    answers = answer_rows(model, rows, data_dir, progress)
    hits = _hits_by_attribute(answers)
    confusions = Counter(
        (answer.row["attribute"], answer.row["value"], answer.answer.value or "(empty)")
        for answer in answers
        if not answer.correct
    )
    scored = [answer for answer in answers if answer.answer.confidence is not None]

    majority = majority_answers(read_qa_rows(data_dir / "vqa_train.csv"))
    majority_hits: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for row in rows:
        majority_hits[_majority_key(row)].append(majority.get(_majority_key(row)) == row["value"])

    base_hits: dict[tuple[str, str], list[bool]] | None = None
    if compare_base:
        with tempfile.TemporaryDirectory(prefix="describer-eval-") as work:
            source = base_model_source(model_dir, model.catalogue, Path(work))
            base = load_served_model(source, model.catalogue, model.calibration)
            base_hits = _hits_by_attribute(answer_rows(base, rows, data_dir, progress))

    scores = []
    for key in sorted(hits):
        category, name = key
        attribute_scored = [answer for answer in scored if _majority_key(answer.row) == key]
        confidences = [answer.answer.confidence or 0.0 for answer in attribute_scored]
        correct = [answer.correct for answer in attribute_scored]
        scores.append(
            AttributeScore(
                category=category,
                attribute=name,
                questions=len(hits[key]),
                accuracy=_mean(hits[key]),
                majority_baseline=_mean(majority_hits[key]),
                base_model=_mean(base_hits[key]) if base_hits is not None else None,
                expected_calibration_error=expected_calibration_error(confidences, correct)
                if attribute_scored
                else None,
                coverage=_coverage(confidences, correct) if attribute_scored else [],
            )
        )
    confidences = [answer.answer.confidence or 0.0 for answer in scored]
    correct = [answer.correct for answer in scored]
    report = EvaluationReport(
        model_id=model.model_id,
        split=split,
        products=len({row["id"] for row in rows}),
        questions=len(rows),
        attributes=scores,
        categories=_category_scores(rows, scores, scored),
        macro_accuracy=_mean([score.accuracy for score in scores]),
        majority_macro_accuracy=_mean([score.majority_baseline for score in scores]),
        base_macro_accuracy=_mean([s.base_model or 0.0 for s in scores]) if base_hits is not None else None,
        top_confusions=[
            Confusion(attribute=attribute, expected=expected, predicted=value, count=count)
            for (attribute, expected, value), count in confusions.most_common(10)
        ],
        calibration=model.calibration,
        expected_calibration_error=expected_calibration_error(confidences, correct),
        calibration_held_out=model.calibration.split != split,
        coverage=_coverage(confidences, correct),
        thresholds=_thresholds(scored),
        reliability=reliability_bins(confidences, correct),
    )
    if out_dir is not None:
        write_report(report, Path(out_dir))
    return report


def _category_scores(
    rows: Sequence[dict[str, str]], scores: Sequence[AttributeScore], scored: Sequence[RowAnswer]
) -> list[CategoryScore]:
    """Per category of the products (the article-type question counts under generic)."""
    result = []
    for category in sorted({score.category for score in scores}):
        members = [score for score in scores if score.category == category]
        answers = [answer for answer in scored if _majority_key(answer.row)[0] == category]
        result.append(
            CategoryScore(
                category=category,
                products=len({row["id"] for row in rows if _majority_key(row)[0] == category}),
                questions=sum(score.questions for score in members),
                macro_accuracy=_mean([score.accuracy for score in members]),
                majority_baseline=_mean([score.majority_baseline for score in members]),
                expected_calibration_error=expected_calibration_error(
                    [answer.answer.confidence or 0.0 for answer in answers], [a.correct for a in answers]
                )
                if answers
                else None,
            )
        )
    return result


def worst_attribute(report: EvaluationReport) -> AttributeScore | None:
    """The (category, attribute) with the largest expected calibration error."""
    calibrated = [score for score in report.attributes if score.expected_calibration_error is not None]
    return max(calibrated, key=lambda score: score.expected_calibration_error or 0.0, default=None)


def write_report(report: EvaluationReport, out_dir: Path) -> None:
    """``evaluation.json``, the accuracy chart ``evaluation.png`` and ``reliability.png`` (headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    names = [f"{score.category}/{score.attribute}" for score in report.attributes] + ["macro"]
    series: dict[str, list[float]] = {
        "fine-tuned": [s.accuracy for s in report.attributes] + [report.macro_accuracy],
        "majority class": [s.majority_baseline for s in report.attributes] + [report.majority_macro_accuracy],
    }
    if report.base_macro_accuracy is not None:
        series["base model"] = [s.base_model or 0.0 for s in report.attributes] + [report.base_macro_accuracy]
    figure, axes = plt.subplots(figsize=(max(10, len(names) * 0.45), 5))
    width = 0.8 / len(series)
    for offset, (label, values) in enumerate(series.items()):
        axes.bar([i + offset * width for i in range(len(names))], values, width, label=label)
    axes.set_xticks(
        [i + width * (len(series) - 1) / 2 for i in range(len(names))], names, rotation=60, ha="right"
    )
    axes.set_ylim(0, 1)
    axes.set_ylabel("accuracy")
    axes.set_title(f"{report.model_id}: {report.split} split, {report.products} products")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(out_dir / "evaluation.png", dpi=100)
    plt.close(figure)
    title = (
        f"{report.model_id}: {report.split} split, ECE {report.expected_calibration_error:.3f} "
        f"(T = {report.calibration.temperature:.2f})"
    )
    write_reliability_diagram(report.reliability, title, out_dir / "reliability.png")


def write_reliability_diagram(reliability: Sequence[ReliabilityBin], title: str, out_file: Path) -> None:
    """Accuracy against confidence per bin, bar width = the bin, with the diagonal of perfect calibration."""
    import matplotlib.pyplot as plt

    filled = [item for item in reliability if item.count]
    figure, (axes, counts) = plt.subplots(
        2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    axes.bar(
        [item.lower for item in filled],
        [item.accuracy for item in filled],
        width=[item.upper - item.lower for item in filled],
        align="edge",
        edgecolor="black",
        label="accuracy",
    )
    axes.plot(
        [item.confidence for item in filled],
        [item.accuracy for item in filled],
        "o",
        color="black",
        label="mean confidence",
    )
    axes.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    axes.set_ylim(0, 1)
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    axes.legend(loc="upper left")
    counts.bar(
        [item.lower for item in reliability],
        [item.count for item in reliability],
        width=1 / len(reliability),
        align="edge",
        edgecolor="black",
    )
    counts.set_xlim(0, 1)
    counts.set_xlabel("confidence")
    counts.set_ylabel("answers")
    figure.tight_layout()
    figure.savefig(out_file, dpi=100)
    plt.close(figure)


def print_report(report: EvaluationReport, console: Any = None) -> None:
    console = console or Console(width=max(Console().width, 130))  # the table stays readable when piped
    table = Table(title=f"{report.model_id} on {report.products} held-out products ({report.split})")
    review_columns = [f"acc. {point:.0%} to review" for point in REVIEW_SHARES]
    for column in (
        "category",
        "attribute",
        "questions",
        "fine-tuned",
        "majority class",
        "base model",
        "ECE",
        *review_columns,
    ):
        table.add_column(column, justify="left" if column in ("category", "attribute") else "right")
    for score in report.attributes:
        table.add_row(
            score.category,
            score.attribute,
            str(score.questions),
            f"{score.accuracy:.3f}",
            f"{score.majority_baseline:.3f}",
            _number(score.base_model),
            _number(score.expected_calibration_error),
            *[f"{point.accuracy:.3f}" for point in score.coverage] or ["-"] * len(REVIEW_SHARES),
        )
    table.add_row(
        "all" if report.coverage else "macro",
        "",
        str(report.questions),
        f"{report.macro_accuracy:.3f} (macro)",
        f"{report.majority_macro_accuracy:.3f}",
        _number(report.base_macro_accuracy),
        f"{report.expected_calibration_error:.3f}",
        *[f"{point.accuracy:.3f} (< {point.threshold:.2f})" for point in report.coverage],
        style="bold",
    )
    console.print(table)
    categories = Table(title="per category")
    for column in ("category", "products", "questions", "macro accuracy", "majority class", "ECE"):
        categories.add_column(column, justify="left" if column == "category" else "right")
    for category in report.categories:
        categories.add_row(
            category.category,
            str(category.products),
            str(category.questions),
            f"{category.macro_accuracy:.3f}",
            f"{category.majority_baseline:.3f}",
            _number(category.expected_calibration_error),
        )
    console.print(categories)
    held_out = (
        "" if report.calibration_held_out else " (NOT held out: the temperature was fitted on this split)"
    )
    thresholds = Table(title="review thresholds (ReviewThreshold)")
    for column in ("threshold", "answers to review", "products to review", "accuracy of the rest"):
        thresholds.add_column(column, justify="right")
    for point in report.thresholds:
        thresholds.add_row(
            f"{point.threshold:.2f}",
            f"{point.answers_to_review:.1%}",
            f"{point.products_to_review:.1%}",
            f"{point.accuracy_kept:.3f}",
        )
    console.print(thresholds)
    console.print(
        f"confidence temperature {report.calibration.temperature:.3f}, fitted on the "
        f"{report.calibration.split or 'no'} split{held_out}"
    )
    if report.top_confusions:
        confusions = Table(title="most common confusions")
        for column in ("attribute", "expected", "predicted", "count"):
            confusions.add_column(column)
        for item in report.top_confusions[:5]:
            confusions.add_row(item.attribute, item.expected, item.predicted, str(item.count))
        console.print(confusions)
    worst = worst_attribute(report)
    print(f"categories: {sum(1 for c in report.categories if c.category != GENERIC_CATEGORY)}")
    print(f"macro accuracy: {report.macro_accuracy:.2f}")
    print(f"expected calibration error: {report.expected_calibration_error:.3f}")
    if worst is not None:
        ece = worst.expected_calibration_error or 0.0
        print(f"worst attribute ECE: {ece:.3f} ({worst.category}/{worst.attribute})")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
