"""``make real-eval``: a model dir on every photo of a Kaggle-layout folder, as held out.

Asked as the pipeline asks, through the endpoint's own code (``training.served_answers.answer_rows``): the
article type as for an upload without a category folder (the generic category's question), each
attribute under the product's true category. Labels are the folder's own, read and folded as
training reads them (``training.dataset``): a missing label is not asked, one outside the catalogue
is counted and not asked.

Per (category, attribute): accuracy, the majority baseline (always the training split's most common
value, stored in the model dir by ``make real-model``), balanced accuracy (mean recall over the true
values), the expected calibration error and the AUROC of the confidence (the chance that a right
answer is more confident than a wrong one: does review see the errors first?). Over every answer:
the review-effort curve (lowest confidence first to review, accuracy of the rest, Wilson 95 %
intervals) saved as ``review_effort.png`` beside ``reliability.png``; the confusions of the article
type and of the worst attributes. "macro" is the mean over every (category, attribute) with at least
``MACRO_MIN_ANSWERS`` labelled answers here, colour included, the article type not.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from describer_rules.catalogue import ARTICLE_TYPE_ATTRIBUTE, COLOUR_ATTRIBUTE, GENERIC_CATEGORY
from endpoint.model import DescriberModel
from training.calibration import ReliabilityBin, expected_calibration_error, reliability_bins
from training.dataset import (
    DatasetLayoutError,
    LabelCounts,
    question_answer_rows,
    read_dataset,
)
from training.evaluate import write_reliability_diagram
from training.model_dir import read_metadata
from training.served_answers import RowAnswer, answer_rows, asked_category

MACRO_MIN_ANSWERS = 30
REVIEW_TARGETS = (0.95, 0.98)
WORST_SHOWN = 3
Z_95 = 1.959964


def wilson_interval(successes: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default)."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)


def auroc(confidences: Sequence[float], correct: Sequence[bool]) -> float | None:
    """P(a right answer's confidence > a wrong one's), ties half (Mann-Whitney); None without both."""
    positives = sum(correct)
    negatives = len(correct) - positives
    if not positives or not negatives:
        return None
    order = sorted(range(len(confidences)), key=lambda index: confidences[index])
    ranks = [0.0] * len(order)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and confidences[order[end + 1]] == confidences[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    rank_sum = sum(rank for rank, right in zip(ranks, correct, strict=True) if right)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def balanced_accuracy(truths: Sequence[str], predictions: Sequence[str]) -> float:
    """Mean over the true values of the share of each answered right."""
    by_value: dict[str, list[bool]] = defaultdict(list)
    for truth, prediction in zip(truths, predictions, strict=True):
        by_value[truth].append(truth == prediction)
    return sum(sum(hits) / len(hits) for hits in by_value.values()) / len(by_value) if by_value else 0.0


class ReviewPoint(BaseModel):
    """The least confident ``review_share`` of the answers go to review; the rest are kept."""

    review_share: float
    kept: int
    accuracy: float
    low: float = Field(description="Wilson 95 % interval of the kept answers' accuracy")
    high: float


class ReviewTarget(BaseModel):
    target: float
    review_share: float = Field(description="Smallest share to review for the rest to reach the target")
    accuracy: float
    low: float
    high: float
    review_share_sure: float = Field(
        description="Smallest share for which the Wilson interval's lower end reaches the target"
    )


def review_curve(confidences: Sequence[float], correct: Sequence[bool]) -> list[ReviewPoint]:
    """Accuracy of the kept answers for every number kept, most confident first."""
    ranked = sorted(range(len(confidences)), key=lambda index: -confidences[index])
    points, hits = [], 0
    for kept, index in enumerate(ranked, start=1):
        hits += correct[index]
        low, high = wilson_interval(hits, kept)
        points.append(
            ReviewPoint(
                review_share=1 - kept / len(ranked), kept=kept, accuracy=hits / kept, low=low, high=high
            )
        )
    return points


def review_target(curve: Sequence[ReviewPoint], target: float) -> ReviewTarget:
    reached = [point for point in curve if point.accuracy >= target]
    sure = [point for point in curve if point.low >= target]
    best = min(reached, key=lambda point: point.review_share) if reached else None
    return ReviewTarget(
        target=target,
        review_share=best.review_share if best else 1.0,
        accuracy=best.accuracy if best else 0.0,
        low=best.low if best else 0.0,
        high=best.high if best else 0.0,
        review_share_sure=min((point.review_share for point in sure), default=1.0),
    )


class RealScore(BaseModel):
    category: str
    attribute: str
    answers: int
    accuracy: float
    majority: float = Field(description="Always answering the training split's most common value")
    balanced_accuracy: float
    expected_calibration_error: float
    auroc: float | None = Field(description="AUROC of the confidence for telling right from wrong")
    in_macro: bool


class Confusion(BaseModel):
    expected: str
    answered: str
    count: int


class RealEvaluation(BaseModel):
    model_id: str
    kaggle_dir: str
    date: str
    products: int
    answers: int
    products_outside_catalogue: dict[str, int]
    bad_input: dict[str, int] = Field(description="What reading the folder could not use, counted")
    labels: LabelCounts
    scores: list[RealScore]
    article_type: RealScore
    colour_accuracy: float
    colour_majority: float
    macro_accuracy: float
    macro_majority: float
    expected_calibration_error: float
    review_targets: list[ReviewTarget]
    confusions: dict[str, list[Confusion]] = Field(
        description="The commonest confusions of the article type and of the worst attributes"
    )
    reliability: list[ReliabilityBin]


def _score(
    key: tuple[str, str], answers: Sequence[RowAnswer], majority: dict[str, str], in_macro: bool
) -> RealScore:
    confidences = [answer.answer.confidence or 0.0 for answer in answers]
    correct = [answer.correct for answer in answers]
    usual = majority.get(f"{key[0]}/{key[1]}")
    return RealScore(
        category=key[0],
        attribute=key[1],
        answers=len(answers),
        accuracy=sum(correct) / len(correct),
        majority=sum(answer.row["value"] == usual for answer in answers) / len(answers),
        balanced_accuracy=balanced_accuracy(
            [answer.row["value"] for answer in answers], [answer.answer.value or "" for answer in answers]
        ),
        expected_calibration_error=expected_calibration_error(confidences, correct),
        auroc=auroc(confidences, correct),
        in_macro=in_macro,
    )


def evaluate_real(
    kaggle_dir: Path,
    model_dir: Path,
    out_dir: Path,
    *,
    macro_min_answers: int = MACRO_MIN_ANSWERS,
    progress: bool = True,
) -> tuple[RealEvaluation, list[ReviewPoint]]:
    model = DescriberModel.load(model_dir)
    metadata = read_metadata(model_dir)
    majority: dict[str, str] = metadata.metrics.get("training_majority", {})
    products, source = read_dataset(kaggle_dir, progress=progress)
    rows: list[dict[str, str]] = []
    labels: LabelCounts = {}
    outside: Counter[str] = Counter()
    for product in products:
        product_rows, _ = question_answer_rows(product, model.catalogue, labels)
        if not product_rows:
            outside[product.article_type] += 1
        rows.extend(product_rows)
    if not rows:
        raise ValueError(f"{kaggle_dir}: no product of a category the model's catalogue knows")
    answers = answer_rows(model, rows, Path(kaggle_dir), progress)
    by_key: dict[tuple[str, str], list[RowAnswer]] = defaultdict(list)
    for answer in answers:
        by_key[(asked_category(answer.row), answer.row["attribute"])].append(answer)
    article_key = (GENERIC_CATEGORY, ARTICLE_TYPE_ATTRIBUTE)
    scores = [
        _score(key, members, majority, key != article_key and len(members) >= macro_min_answers)
        for key, members in sorted(by_key.items())
    ]
    macro = [score for score in scores if score.in_macro]
    colour = [answer for answer in answers if answer.row["attribute"] == COLOUR_ATTRIBUTE]
    colour_majority = [
        answer.row["value"] == majority.get(f"{answer.row['article_type']}/{COLOUR_ATTRIBUTE}")
        for answer in colour
    ]
    confidences = [answer.answer.confidence or 0.0 for answer in answers]
    correct = [answer.correct for answer in answers]
    curve = review_curve(confidences, correct)
    article_type = next(score for score in scores if (score.category, score.attribute) == article_key)
    worst = sorted(macro, key=lambda score: score.accuracy)[:WORST_SHOWN]
    confusions = {}
    for score in [article_type, *worst]:
        counts = Counter(
            (answer.row["value"], answer.answer.value or "")
            for answer in by_key[(score.category, score.attribute)]
            if not answer.correct
        )
        confusions[f"{score.category}/{score.attribute}"] = [
            Confusion(expected=expected, answered=answered, count=count)
            for (expected, answered), count in counts.most_common(5)
        ]
    report = RealEvaluation(
        model_id=model.model_id,
        kaggle_dir=str(kaggle_dir),
        date=date.today().isoformat(),
        products=len({row["id"] for row in rows}),
        answers=len(answers),
        products_outside_catalogue=dict(outside.most_common()),
        bad_input={
            "styles files that do not parse": len(source.unreadable),
            "products without an article type": len(source.no_article_type),
            "photos missing": len(source.missing_images),
            "photos that do not decode": len(source.unreadable_images),
            "labels outside the catalogue": sum(count.outside for count in labels.values()),
        },
        labels=labels,
        scores=scores,
        article_type=article_type,
        colour_accuracy=sum(answer.correct for answer in colour) / max(len(colour), 1),
        colour_majority=sum(colour_majority) / max(len(colour), 1),
        macro_accuracy=sum(score.accuracy for score in macro) / max(len(macro), 1),
        macro_majority=sum(score.majority for score in macro) / max(len(macro), 1),
        expected_calibration_error=expected_calibration_error(confidences, correct),
        review_targets=[review_target(curve, target) for target in REVIEW_TARGETS],
        confusions=confusions,
        reliability=reliability_bins(confidences, correct),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "real_evaluation.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    write_charts(report, curve, out_dir)
    return report, curve


def write_charts(report: RealEvaluation, curve: Sequence[ReviewPoint], out_dir: Path) -> None:
    """``review_effort.png`` (accuracy of the rest against the share reviewed, Wilson band) and
    ``reliability.png`` (accuracy against confidence per bin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    shares = [100 * point.review_share for point in curve]
    axes.fill_between(
        shares, [p.low for p in curve], [p.high for p in curve], alpha=0.25, label="Wilson 95 %"
    )
    axes.plot(shares, [p.accuracy for p in curve], label="accuracy of the answers kept")
    for target in report.review_targets:
        axes.axhline(target.target, color="grey", linestyle="--", linewidth=0.8)
        axes.plot([100 * target.review_share], [target.target], "o", color="black")
        axes.annotate(
            f"{target.target:.0%}: review {target.review_share:.0%}",
            (100 * target.review_share, target.target),
            textcoords="offset points",
            xytext=(6, -12),
            fontsize=8,
        )
    axes.set_xlim(0, 100)
    axes.set_ylim(min(0.6, curve[-1].accuracy - 0.02), 1.0)
    axes.set_xlabel("answers sent to review, least confident first (%)")
    axes.set_ylabel("accuracy of the rest")
    axes.set_title(f"{report.answers} answers on {report.products} real photos", fontsize=10)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(out_dir / "review_effort.png", dpi=80)
    plt.close(figure)

    title = f"{report.answers} answers on real photos, ECE {report.expected_calibration_error:.3f}"
    write_reliability_diagram(report.reliability, title, out_dir / "reliability.png")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_evaluation(report: RealEvaluation, out_dir: Path) -> None:
    console = Console(width=max(Console().width, 130))
    table = Table(title=f"{report.model_id} on {report.products} real photos of {report.kaggle_dir}")
    columns = (
        "category",
        "attribute",
        "answers",
        "accuracy",
        "majority",
        "balanced",
        "ECE",
        "AUROC",
        "macro",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("category", "attribute") else "right")
    for score in report.scores:
        table.add_row(
            score.category,
            score.attribute,
            str(score.answers),
            f"{score.accuracy:.3f}",
            f"{score.majority:.3f}",
            f"{score.balanced_accuracy:.3f}",
            f"{score.expected_calibration_error:.3f}",
            _number(score.auroc),
            "yes" if score.in_macro else "",
        )
    console.print(table)
    effort = Table(title="review effort (least confident first)")
    for column in (
        "accuracy of the rest",
        "share to review",
        "accuracy there (Wilson 95 %)",
        "share, interval >= it",
    ):
        effort.add_column(column, justify="right")
    for target in report.review_targets:
        effort.add_row(
            f">= {target.target:.0%}",
            f"{target.review_share:.1%}",
            f"{target.accuracy:.3f} ({target.low:.3f}-{target.high:.3f})",
            f"{target.review_share_sure:.1%}",
        )
    console.print(effort)
    for key, items in report.confusions.items():
        confusions = Table(title=f"confusions: {key}")
        for column in ("label", "answered", "count"):
            confusions.add_column(column)
        for item in items:
            confusions.add_row(item.expected, item.answered, str(item.count))
        console.print(confusions)
    print("; ".join(f"{name}: {count}" for name, count in report.bad_input.items()))
    if report.products_outside_catalogue:
        outside = ", ".join(f"{name} {n}" for name, n in report.products_outside_catalogue.items())
        print(f"not asked (article type outside the catalogue): {outside}")
    written = ", ".join(
        str(out_dir / name) for name in ("real_evaluation.json", "review_effort.png", "reliability.png")
    )
    print(f"written: {written}")
    review_98 = next(target for target in report.review_targets if target.target == 0.98)
    print(f"real photos: {report.products} products, {report.answers} answers")
    article = report.article_type
    print(f"article type accuracy: {article.accuracy:.2f} (majority {article.majority:.2f})")
    print(f"colour accuracy: {report.colour_accuracy:.2f} (majority {report.colour_majority:.2f})")
    print(f"macro accuracy: {report.macro_accuracy:.2f} (majority {report.macro_majority:.2f})")
    print(f"expected calibration error: {report.expected_calibration_error:.3f}")
    print(f"review share for 98% accuracy: {review_98.review_share:.0%}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kaggle-dir", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None, help="default: <model dir>/real-eval")
    args = parser.parse_args(argv)
    out_dir = args.out or args.model_dir / "real-eval"
    started = time.perf_counter()
    try:
        report, _ = evaluate_real(args.kaggle_dir, args.model_dir, out_dir)
    except DatasetLayoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"evaluated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print_evaluation(report, out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
