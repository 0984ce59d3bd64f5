"""Evaluation of a model directory on held-out products.

Per-attribute accuracy after the catalogue's answer normalisation (``describer_core.answers.
parse_answer``, the same rule the endpoint applies), their macro average, the most common
confusions, against two baselines: always answering the training split's most frequent value
(per category and attribute), and the un-fine-tuned base model. Writes ``evaluation.json`` and
``evaluation.png``; ``print_report`` prints the table and ends with ``macro accuracy: 0.NN``.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from describer_core.answers import parse_answer
from describer_core.catalogue import GENERIC_CATEGORY, Catalogue, load_catalogue
from training.model_dir import CATALOGUE_FILE, read_metadata
from training.modeling import batches, generate_answers, group_by_image
from training.prepare import ARTICLE_TYPE_ATTRIBUTE, attribute_spec, read_qa_rows
from training.tiny import build_base_model_dir, catalogue_texts


class AttributeScore(BaseModel):
    attribute: str
    questions: int
    accuracy: float
    majority_baseline: float
    base_model: float | None


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
    attributes: list[AttributeScore]
    macro_accuracy: float
    majority_macro_accuracy: float
    base_macro_accuracy: float | None
    top_confusions: list[Confusion]


def predict(
    model_dir: Path | str,
    rows: Sequence[dict[str, str]],
    data_dir: Path,
    batch_size: int = 16,
    progress: bool = True,
) -> list[str]:
    """The model's raw answer to every row, in row order (one vision pass per image)."""
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    model = Blip2ForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = Blip2Processor.from_pretrained(model_dir)
    items = group_by_image(rows, data_dir)
    by_row: dict[int, str] = {}
    row_positions = {id(row): index for index, row in enumerate(rows)}
    for chunk in tqdm(list(batches(items, batch_size)), desc="answering", unit="batch", disable=not progress):
        answers = generate_answers(model, processor, chunk, torch.device("cpu"))
        chunk_rows = [row for item in chunk for row in item.rows]
        for row, answer in zip(chunk_rows, answers, strict=True):
            by_row[row_positions[id(row)]] = answer
    return [by_row[index] for index in range(len(rows))]


def _majority_key(row: dict[str, str]) -> tuple[str, str]:
    # The article type is what the Article Type question asks, so its baseline cannot know it.
    category = GENERIC_CATEGORY if row["attribute"] == ARTICLE_TYPE_ATTRIBUTE else row["article_type"]
    return (category, row["attribute"])


def majority_answers(train_rows: Sequence[dict[str, str]]) -> dict[tuple[str, str], str]:
    """The training split's most frequent value per (category, attribute)."""
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for row in train_rows:
        counts[_majority_key(row)][row["value"]] += 1
    return {key: counter.most_common(1)[0][0] for key, counter in counts.items()}


def _accuracy_by_attribute(
    rows: Sequence[dict[str, str]], predicted: Sequence[str], catalogue: Catalogue
) -> tuple[dict[str, list[bool]], Counter[tuple[str, str, str]]]:
    hits: dict[str, list[bool]] = defaultdict(list)
    confusions: Counter[tuple[str, str, str]] = Counter()
    for row, raw in zip(rows, predicted, strict=True):
        value = parse_answer(raw, attribute_spec(catalogue, row)).value
        hits[row["attribute"]].append(value == row["value"])
        if value != row["value"]:
            confusions[(row["attribute"], row["value"], value or "(empty)")] += 1
    return hits, confusions


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
    batch_size: int = 16,
    progress: bool = True,
) -> EvaluationReport:
    model_dir, data_dir = Path(model_dir), Path(data_dir)
    catalogue = load_catalogue(model_dir / CATALOGUE_FILE)
    rows = read_qa_rows(data_dir / f"vqa_{split}.csv")
    if not rows:
        raise ValueError(f"no rows in {data_dir / f'vqa_{split}.csv'}")
    predicted = predict(model_dir, rows, data_dir, batch_size, progress)
    hits, confusions = _accuracy_by_attribute(rows, predicted, catalogue)

    majority = majority_answers(read_qa_rows(data_dir / "vqa_train.csv"))
    majority_hits: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        majority_hits[row["attribute"]].append(majority.get(_majority_key(row)) == row["value"])

    base_hits: dict[str, list[bool]] | None = None
    if compare_base:
        with tempfile.TemporaryDirectory(prefix="describer-eval-") as work:
            source = base_model_source(model_dir, catalogue, Path(work))
            base_hits, _ = _accuracy_by_attribute(
                rows, predict(source, rows, data_dir, batch_size, progress), catalogue
            )

    scores = [
        AttributeScore(
            attribute=name,
            questions=len(hits[name]),
            accuracy=_mean(hits[name]),
            majority_baseline=_mean(majority_hits[name]),
            base_model=_mean(base_hits[name]) if base_hits is not None else None,
        )
        for name in hits
    ]
    report = EvaluationReport(
        model_id=read_metadata(model_dir).model_id,
        split=split,
        products=len({row["id"] for row in rows}),
        questions=len(rows),
        attributes=scores,
        macro_accuracy=_mean([score.accuracy for score in scores]),
        majority_macro_accuracy=_mean([score.majority_baseline for score in scores]),
        base_macro_accuracy=_mean([s.base_model or 0.0 for s in scores]) if base_hits is not None else None,
        top_confusions=[
            Confusion(attribute=attribute, expected=expected, predicted=value, count=count)
            for (attribute, expected, value), count in confusions.most_common(10)
        ],
    )
    if out_dir is not None:
        write_report(report, Path(out_dir))
    return report


def write_report(report: EvaluationReport, out_dir: Path) -> None:
    """``evaluation.json`` and a bar chart ``evaluation.png`` (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    names = [score.attribute for score in report.attributes] + ["macro"]
    series: dict[str, list[float]] = {
        "fine-tuned": [s.accuracy for s in report.attributes] + [report.macro_accuracy],
        "majority class": [s.majority_baseline for s in report.attributes] + [report.majority_macro_accuracy],
    }
    if report.base_macro_accuracy is not None:
        series["base model"] = [s.base_model or 0.0 for s in report.attributes] + [report.base_macro_accuracy]
    figure, axes = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(series)
    for offset, (label, values) in enumerate(series.items()):
        axes.bar([i + offset * width for i in range(len(names))], values, width, label=label)
    axes.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(names))], names, rotation=20)
    axes.set_ylim(0, 1)
    axes.set_ylabel("accuracy")
    axes.set_title(f"{report.model_id}: {report.split} split, {report.products} products")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(out_dir / "evaluation.png", dpi=100)
    plt.close(figure)


def print_report(report: EvaluationReport, console: Any = None) -> None:
    console = console or Console()
    table = Table(title=f"{report.model_id} on {report.products} held-out products ({report.split})")
    for column in ("attribute", "questions", "fine-tuned", "majority class", "base model"):
        table.add_column(column, justify="left" if column == "attribute" else "right")
    for score in report.attributes:
        base = "-" if score.base_model is None else f"{score.base_model:.3f}"
        table.add_row(
            score.attribute,
            str(score.questions),
            f"{score.accuracy:.3f}",
            f"{score.majority_baseline:.3f}",
            base,
        )
    base_macro = "-" if report.base_macro_accuracy is None else f"{report.base_macro_accuracy:.3f}"
    table.add_row(
        "macro",
        str(report.questions),
        f"{report.macro_accuracy:.3f}",
        f"{report.majority_macro_accuracy:.3f}",
        base_macro,
        style="bold",
    )
    console.print(table)
    if report.top_confusions:
        confusions = Table(title="most common confusions")
        for column in ("attribute", "expected", "predicted", "count"):
            confusions.add_column(column)
        for item in report.top_confusions[:5]:
            confusions.add_row(item.attribute, item.expected, item.predicted, str(item.count))
        console.print(confusions)
    print(f"macro accuracy: {report.macro_accuracy:.2f}")
