"""``make review-bench``: the review loop on the synthetic set, measured.

1. Two fresh synthetic batches the demo model never saw (their own seeds and ids): one goes through
   review, one is held out to measure on.
2. The demo model answers every product of both (its own endpoint code, in this process). A product
   needs review as the pipeline decides it (``describer_rules.confidence.needs_review``).
3. The reviewed batch's products that need review are "reviewed": corrected with their true
   attributes, recorded as the desk records a review, and exported with the desk's own export
   (``describer.review.corrections``) into ``corrections.csv`` + ``images/``.
4. Fine-tune from the demo model's weights with ``--extra-pairs`` (a few epochs on the demo data plus
   the corrections; calibrated as training always is), and, as a control, the same fine-tune without
   them: what the corrections add, not what more epochs add.
5. The models on the held-out batch: the share of products needing review and answer accuracy.

Last line: ``review loop: needs review P1% -> P2%, accuracy A1 -> A2``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from describer.review.corrections import CORRECTIONS_FILE, export_corrections
from describer_aws.results_table import utc_now
from describer_rules.catalogue import GENERIC_CATEGORY, load_catalogue
from describer_rules.confidence import needs_review
from describer_rules.contracts import (
    AttributeAnswer,
    ProductRecord,
    Question,
    Review,
    ReviewChange,
    ReviewStatus,
    Status,
)
from describer_steps.settings import DEFAULT_REVIEW_THRESHOLD
from endpoint.serve import EntryPoint
from training.synth import write_synthetic_catalogue
from training.train import parse_args, print_history, train
from training.train_config import PRESET_TRAINABLE_MODULES

REVIEWED_SEED, HELD_OUT_SEED = 31_001, 31_002
REVIEWED_FIRST_ID, HELD_OUT_FIRST_ID = 700_000, 750_000
BENCH_REVIEWER = "arn:aws:sts::000000000000:assumed-role/Reviewers/review-bench"
# The fine-tune: from the demo model's weights, every module trained (as the demo recipe does), a few
# epochs at a fifth of the demo's learning rate so it adapts rather than starts over.
FINE_TUNE_ARGS = (
    "--epochs", "4",
    "--batch-size", "16",
    "--learning-rate", "2e-4",
    "--warmup-ratio", "0.05",
    "--lora-dropout", "0",
    "--trainable-modules", PRESET_TRAINABLE_MODULES,
    "--eval-products", "60",
)  # fmt: skip


@dataclass(frozen=True)
class Photo:
    product_id: str
    category: str
    path: Path
    truth: dict[str, str]


@dataclass(frozen=True)
class Answered:
    photo: Photo
    answers: list[AttributeAnswer]

    @property
    def needs_review(self) -> bool:
        confidence = {a.attribute: a.confidence for a in self.answers if a.confidence is not None}
        unknown = [a.attribute for a in self.answers if not a.known]
        return needs_review(confidence, unknown, DEFAULT_REVIEW_THRESHOLD)

    @property
    def right(self) -> int:
        return sum(self.photo.truth.get(a.attribute) == a.value for a in self.answers)


@dataclass(frozen=True)
class Score:
    products: int
    needing_review: int
    answers: int
    right: int

    @property
    def review_share(self) -> float:
        return self.needing_review / self.products

    @property
    def accuracy(self) -> float:
        return self.right / self.answers


def synthetic_photos(out_dir: Path, products: int, seed: int, first_id: int) -> list[Photo]:
    """The batch's products that the catalogue has questions for, with their true attributes."""
    catalogue = load_catalogue()
    drawn = write_synthetic_catalogue(out_dir, products, seed=seed, first_id=first_id, progress=False)
    photos = []
    for product in drawn:
        if catalogue.category(product.article_type).name == GENERIC_CATEGORY:
            continue
        truth = product.truth
        path = out_dir / "images" / f"{product.product_id}.jpg"
        photos.append(Photo(str(product.product_id), product.article_type, path, truth))
    return photos


def answer_all(model_dir: Path, photos: Sequence[Photo], label: str) -> list[Answered]:
    model = EntryPoint(model_dir)
    # The questions the model was trained on (its own catalogue): a reviewer's correction can only
    # teach an attribute whose truth the synthetic photo shows.
    catalogue = model.model.catalogue
    answered = []
    for photo in tqdm(photos, desc=label, unit="product"):
        questions = [Question(attribute=a, question=q) for a, q in catalogue.questions(photo.category)]
        response = model.model.describe_image(photo.path.read_bytes(), questions, photo.category)
        answered.append(Answered(photo, list(response.answers)))
    return answered


def score(answered: Sequence[Answered]) -> Score:
    return Score(
        products=len(answered),
        needing_review=sum(item.needs_review for item in answered),
        answers=sum(len(item.answers) for item in answered),
        right=sum(item.right for item in answered),
    )


def reviewed_record(item: Answered) -> ProductRecord:
    """The record of a product the desk would show, after a reviewer set every attribute to the truth."""
    photo = item.photo
    model_values = {answer.attribute: answer.value for answer in item.answers}
    corrected = {name: photo.truth[name] for name in model_values if name in photo.truth}
    changes = [
        ReviewChange(field=f"attributes.{name}", before=model_values[name], after=value)
        for name, value in corrected.items()
        if model_values[name] != value
    ]
    now = utc_now()
    status = ReviewStatus.CORRECTED if changes else ReviewStatus.ACCEPTED
    return ProductRecord(
        product_id=photo.product_id,
        category=photo.category,
        status=Status.COMPLETED,
        source_bucket="review-bench",
        source_key=f"incoming/{photo.category}/{photo.path.name}",
        source_version="null",
        attributes=corrected,
        review_decision=Review(status=status, reviewer=BENCH_REVIEWER, reviewed_at=now, changes=changes),
        created_at=now,
        updated_at=now,
    )


def fine_tune(demo_model_dir: Path, data_dir: Path, out_dir: Path, extra_pairs: Path | None) -> Path:
    """The demo model fine-tuned on its own data, plus ``extra_pairs`` when given; the model dir."""
    extra = ["--extra-pairs", str(extra_pairs)] if extra_pairs else []
    config = parse_args(
        [
            "--train-dir", str(data_dir),
            "--model-dir", str(out_dir / "model"),
            "--output-dir", str(out_dir / "training-output"),
            "--base-model", str(demo_model_dir),
            "--model-id", f"describer-demo-{out_dir.name}",
            *extra,
            *FINE_TUNE_ARGS,
        ],
        env={},
    )  # fmt: skip
    started = time.perf_counter()
    train(config)
    print_history(config.history)
    Console(stderr=True).print(f"fine-tuned ({out_dir.name}) in {time.perf_counter() - started:.0f} s")
    return out_dir / "model"


@dataclass(frozen=True)
class BenchResult:
    before: Score
    control: Score  # the same fine-tune without the corrections: what the corrections add
    after: Score
    reviewed: int
    corrected: int
    pairs: int


def run(
    demo_model_dir: Path, data_dir: Path, work_dir: Path, reviewed_products: int, held_out_products: int
) -> BenchResult:
    console = Console(stderr=True)
    shutil.rmtree(work_dir, ignore_errors=True)
    batch = synthetic_photos(work_dir / "reviewed", reviewed_products, REVIEWED_SEED, REVIEWED_FIRST_ID)
    held_out = synthetic_photos(work_dir / "held-out", held_out_products, HELD_OUT_SEED, HELD_OUT_FIRST_ID)
    console.print(f"{len(batch)} products through review, {len(held_out)} held out")

    answered = answer_all(demo_model_dir, batch, "demo model, review batch")
    records = [reviewed_record(item) for item in answered if item.needs_review]
    by_key = {f"incoming/{photo.category}/{photo.path.name}": photo.path for photo in batch}
    export = export_corrections(
        records, work_dir / "corrections", lambda _b, key, _v: by_key[key].read_bytes()
    )
    console.print(
        f"reviewed {len(records)} products ({export.corrected} corrected, {len(records) - export.corrected} "
        f"accepted as they were): {export.pairs} Q/A pairs"
    )
    before = score(answer_all(demo_model_dir, held_out, "demo model, held out"))
    control_dir = fine_tune(demo_model_dir, data_dir, work_dir / "without-corrections", None)
    control = score(answer_all(control_dir, held_out, "fine-tuned without corrections, held out"))
    after_dir = fine_tune(
        demo_model_dir, data_dir, work_dir / "with-corrections", work_dir / "corrections" / CORRECTIONS_FILE
    )
    after = score(answer_all(after_dir, held_out, "fine-tuned with corrections, held out"))
    return BenchResult(before, control, after, len(records), export.corrected, export.pairs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The review loop on the synthetic set: before and after")
    parser.add_argument("--demo-model-dir", type=Path, default=Path(".cache/demo-model"))
    parser.add_argument(
        "--data-dir", type=Path, default=Path(".cache/demo-data"), help="the demo model's data"
    )
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/review-bench"))
    parser.add_argument(
        "--reviewed-products", type=int, default=3000, help="synthetic products through review"
    )
    parser.add_argument("--held-out-products", type=int, default=1000, help="synthetic products measured on")
    args = parser.parse_args(argv)
    result = run(
        args.demo_model_dir, args.data_dir, args.work_dir, args.reviewed_products, args.held_out_products
    )
    table = Table(
        title=f"The review loop: {result.reviewed} products reviewed ({result.corrected} corrected), "
        f"{result.pairs} Q/A pairs"
    )
    for column in ("model", "held-out products", "needs review", "answer accuracy"):
        table.add_column(column)
    rows = (
        ("demo model", result.before),
        ("fine-tuned without corrections", result.control),
        ("fine-tuned with corrections", result.after),
    )
    for name, scored in rows:
        table.add_row(
            name, str(scored.products), f"{100 * scored.review_share:.1f} %", f"{scored.accuracy:.3f}"
        )
    Console().print(table)
    before, after = result.before, result.after
    print(
        f"review loop: needs review {100 * before.review_share:.1f}% -> {100 * after.review_share:.1f}%, "
        f"accuracy {before.accuracy:.3f} -> {after.accuracy:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
