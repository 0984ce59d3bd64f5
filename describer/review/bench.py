"""``make review-bench``: the review loop on the synthetic set, measured.

1. Two fresh synthetic batches the demo model never saw (their own seeds and ids): one goes through
   review, one is held out to measure on.
2. The demo model answers every product of both (its own endpoint code, in this process). A product
   needs review as the pipeline decides it (``describer_core.confidence.needs_review``).
3. The reviewed batch's products that need review are "reviewed": corrected with their true
   attributes, recorded as the desk records a review, and exported with the desk's own export
   (``describer.review.corrections``) into ``corrections.csv`` + ``images/``.
4. Fine-tune from the demo model's weights with ``--extra-pairs`` (a few epochs on the demo data plus
   the corrections; calibrated as training always is).
5. Both models on the held-out batch: the share of products needing review and answer accuracy.

Last line: ``review loop: needs review P1% -> P2%, accuracy A1 -> A2``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from describer.local.model_host import InferenceModel
from describer.review.corrections import CORRECTIONS_FILE, export_corrections
from describer_core.catalogue import GENERIC_CATEGORY, load_catalogue
from describer_core.confidence import needs_review
from describer_core.contracts import (
    AttributeAnswer,
    ProductRecord,
    Question,
    Review,
    ReviewChange,
    ReviewStatus,
    Status,
)
from describer_core.records import utc_now
from describer_core.settings import DEFAULT_REVIEW_THRESHOLD
from training.synth import write_synthetic_catalogue
from training.train import parse_args, print_history, train
from training.train_config import PRESET_TRAINABLE_MODULES

REVIEWED_SEED, HELD_OUT_SEED = 31_001, 31_002
REVIEWED_FIRST_ID, HELD_OUT_FIRST_ID = 700_000, 750_000
BENCH_REVIEWER = "arn:aws:sts::000000000000:assumed-role/Reviewers/review-bench"
# The fine-tune: from the demo model's weights, every module trained (as the demo recipe does), a few
# epochs at a tenth of the demo's learning rate so it adapts rather than starts over.
FINE_TUNE_ARGS = (
    "--epochs", "3",
    "--batch-size", "16",
    "--learning-rate", "1e-4",
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
        truth = {**product.attributes, "Colour": product.colour}
        path = out_dir / "images" / f"{product.product_id}.jpg"
        photos.append(Photo(str(product.product_id), product.article_type, path, truth))
    return photos


def answer_all(model_dir: Path, photos: Sequence[Photo], label: str) -> list[Answered]:
    model = InferenceModel(model_dir)
    catalogue = load_catalogue()
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


def run(
    demo_model_dir: Path, data_dir: Path, work_dir: Path, products: int
) -> tuple[Score, Score, dict[str, int]]:
    console = Console(stderr=True)
    shutil.rmtree(work_dir, ignore_errors=True)
    reviewed_batch = synthetic_photos(work_dir / "reviewed", products, REVIEWED_SEED, REVIEWED_FIRST_ID)
    held_out = synthetic_photos(work_dir / "held-out", products, HELD_OUT_SEED, HELD_OUT_FIRST_ID)
    console.print(f"{len(reviewed_batch)} products to review from, {len(held_out)} held out")

    flagged = [
        item
        for item in answer_all(demo_model_dir, reviewed_batch, "demo model, review batch")
        if item.needs_review
    ]
    records = [reviewed_record(item) for item in flagged]
    by_path = {f"incoming/{p.category}/{p.path.name}": p.path for p in reviewed_batch}
    export = export_corrections(
        records, work_dir / "corrections", lambda _b, key, _v: by_path[key].read_bytes()
    )
    console.print(
        f"reviewed {len(records)} products ({export.corrected} corrected, {len(records) - export.corrected} "
        f"accepted): {export.pairs} Q/A pairs"
    )
    before = score(answer_all(demo_model_dir, held_out, "demo model, held out"))

    model_dir = work_dir / "model"
    config = parse_args(
        [
            "--train-dir", str(data_dir),
            "--model-dir", str(model_dir),
            "--output-dir", str(work_dir / "training-output"),
            "--base-model", str(demo_model_dir),
            "--extra-pairs", str(work_dir / "corrections" / CORRECTIONS_FILE),
            "--model-id", "describer-demo-reviewed",
            *FINE_TUNE_ARGS,
        ],
        env={},
    )  # fmt: skip
    started = time.perf_counter()
    train(config)
    print_history(config.history)
    console.print(f"fine-tuned in {time.perf_counter() - started:.0f} s")
    after = score(answer_all(model_dir, held_out, "retrained model, held out"))
    counts = {"reviewed": len(records), "corrected": export.corrected, "pairs": export.pairs}
    return before, after, counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The review loop on the synthetic set: before and after")
    parser.add_argument("--demo-model-dir", type=Path, default=Path(".cache/demo-model"))
    parser.add_argument(
        "--data-dir", type=Path, default=Path(".cache/demo-data"), help="the demo model's data"
    )
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/review-bench"))
    parser.add_argument("--products", type=int, default=600, help="synthetic products drawn per batch")
    args = parser.parse_args(argv)
    before, after, counts = run(args.demo_model_dir, args.data_dir, args.work_dir, args.products)
    table = Table(title=f"The review loop ({counts['reviewed']} reviewed, {counts['pairs']} Q/A pairs)")
    for column in ("model", "held-out products", "needs review", "answer accuracy"):
        table.add_column(column)
    for name, result in (("demo model", before), ("retrained with corrections", after)):
        table.add_row(
            name, str(result.products), f"{100 * result.review_share:.1f} %", f"{result.accuracy:.3f}"
        )
    Console().print(table)
    print(json.dumps({"before": before.__dict__, "after": after.__dict__, **counts}))
    print(
        f"review loop: needs review {100 * before.review_share:.1f}% -> {100 * after.review_share:.1f}%, "
        f"accuracy {before.accuracy:.3f} -> {after.accuracy:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
