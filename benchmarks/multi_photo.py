"""``make multi-photo-bench``: what several photos of a product gain over its front photo alone.

The demo model only ever saw front-on pictures, so the benchmark fine-tunes it (every weight, as
the demo model was trained; the demo recipe's settings otherwise) on products drawn in three views
(``training.views``: front, back, detail; some attributes show in one view only), each view a
training image labelled with all the product's attributes, so a view that cannot show an attribute
learns to say so (its prior). Then, on products it never saw:

- **front only**: the endpoint's answer from the front photo alone (one vision pass, each
  attribute's values scored, the calibrated temperature);
- **all photos**: the three photos' scores fused by ``describer_rules.fusion`` (the endpoint's rule),
  at the fusion temperature fitted on separate validation products (stored in the model dir's
  metadata as ``fusion``, where the endpoint reads it).

It prints accuracy per attribute both ways, the fused answers' expected calibration error, the
endpoint time per product (in process: vision passes, scoring and fusion) and, as the last line,
``multi-photo: N products, accuracy A (all photos) vs S (front only), endpoint time per product Xs vs Ys``
(A and S are macro averages over attributes). Takes tens of minutes on a laptop core; run it with
``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from describer_rules.catalogue import load_catalogue
from describer_rules.confidence import softmax
from describer_rules.contracts import Question
from describer_rules.fusion import FusionCalibration, fuse_scores
from describer_rules.model_files import METADATA_FILE
from endpoint.model import DescriberModel
from training.calibration import expected_calibration_error
from training.dataset import prepare_dataset
from training.demo_model_build import DEMO_TRAIN_ARGS
from training.served_answers import calibrate_model_dir
from training.synth import STYLES_HEADER, SyntheticProduct, sample_product, style_json, styles_csv_row
from training.train import parse_args, train
from training.train_config import PRESET_TRAINABLE_MODULES
from training.views import View, render_views, view_catalogue

TRAIN_PRODUCTS = 700
FIT_PRODUCTS = 80
TEST_PRODUCTS = 150
EPOCHS = 10
# A third of the from-scratch rate: the demo model's features are kept, the views are learned on top.
FINE_TUNE_LEARNING_RATE = "3e-4"
DEMO_MODEL_DIR = Path(".cache/demo-model")
# The demo recipe's options that apply to a model trained from scratch only.
_FROM_SCRATCH = ("--base-model", "--late-attributes", "--late-after-epochs")
FUSION_TEMPERATURES = [round(0.5 * 1.15**step, 3) for step in range(20)]


def write_view_catalogue(out_dir: Path, products: int, seed: int) -> None:
    """A Kaggle-layout catalogue whose images are every view of each product (id = product x 10 + view)."""
    rng = random.Random(seed)
    (out_dir / "styles").mkdir(parents=True, exist_ok=True)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = [STYLES_HEADER]
    for index in tqdm(range(products), desc="drawing 3 views", unit="product"):
        product = sample_product(10000 + index, rng, view_catalogue())
        for number, (view, image) in enumerate(render_views(product, rng).items()):
            shot = SyntheticProduct(
                product.product_id * 10 + number,
                product.article_type,
                product.colour,
                product.attributes,
                f"{product.name} ({view})",
                extra_attributes=product.extra_attributes,
            )
            rows.append(styles_csv_row(shot, year=2012))
            (out_dir / "styles" / f"{shot.product_id}.json").write_text(json.dumps(style_json(shot)))
            image.save(out_dir / "images" / f"{shot.product_id}.jpg", quality=92)
    (out_dir / "styles.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def train_view_model(work: Path, start_from: Path, epochs: int, products: int) -> Path:
    kaggle, data, model_dir = work / "kaggle", work / "data", work / "model"
    write_view_catalogue(kaggle, products, seed=11)
    prepare_dataset(kaggle, data, seed=11, catalogue=load_catalogue())
    pairs = list(zip(DEMO_TRAIN_ARGS[::2], DEMO_TRAIN_ARGS[1::2], strict=True))
    args = [part for name, value in pairs if name not in _FROM_SCRATCH for part in (name, value)]
    args[args.index("--epochs") + 1] = str(epochs)
    args[args.index("--learning-rate") + 1] = FINE_TUNE_LEARNING_RATE
    config = parse_args(
        ["--train-dir", str(data), "--model-dir", str(model_dir), "--output-dir", str(work / "out"),
         "--model-id", "describer-multi-photo-bench", "--seed", "11", "--base-model", str(start_from),
         "--trainable-modules", PRESET_TRAINABLE_MODULES, *args],
        env={},
    )  # fmt: skip
    train(config)
    calibrate_model_dir(model_dir, data)
    return model_dir


class ProductScores:
    """Per attribute of one product: the values, the true one and each view's candidate scores."""

    def __init__(self) -> None:
        self.values: dict[str, list[str]] = {}
        self.truth: dict[str, str] = {}
        self.views: dict[str, list[list[float]]] = defaultdict(list)


def score_products(
    model: DescriberModel, products: int, seed: int
) -> tuple[list[ProductScores], float, float]:
    """Every held-out product's scores per view; seconds per product front only and all views."""
    catalogue, rng, tops = model.catalogue, random.Random(seed), view_catalogue()
    results, front_s, all_s = [], 0.0, 0.0
    for index in tqdm(range(products), desc="scoring held-out products", unit="product"):
        product = sample_product(90000 + index, rng, tops)
        questions = [Question(attribute=a, question=q) for a, q in catalogue.questions(product.article_type)]
        truth = product.truth
        scores = ProductScores()
        for view, image in render_views(product, rng).items():
            started = time.perf_counter()
            features = model.encode_image(image)
            _, candidates = model.score_and_answer(features, questions, product.article_type)
            elapsed = time.perf_counter() - started
            front_s += elapsed if view is View.FRONT else 0.0
            all_s += elapsed
            for question, scored in zip(questions, candidates, strict=True):
                if scored is None or truth.get(question.attribute) not in scored.values:
                    continue
                scores.values[question.attribute] = list(scored.values)
                scores.truth[question.attribute] = truth[question.attribute]
                scores.views[question.attribute].append(list(scored.scores))
        results.append(scores)
    return results, front_s / products, all_s / products


def _answers(
    products: list[ProductScores], temperature: float, fusion: FusionCalibration, front_only: bool
) -> list[tuple[str, float, bool]]:
    """(attribute, confidence, correct) of every scored answer."""
    answers = []
    for product in products:
        for attribute, views in product.views.items():
            # One photo alone keeps its own calibrated probabilities (the fusion temperature is for sums).
            alone = FusionCalibration()
            fused = (
                fuse_scores(views[:1], temperature, alone)
                if front_only
                else fuse_scores(views, temperature, fusion)
            )
            value = product.values[attribute][fused.best]
            answers.append((attribute, fused.probabilities[fused.best], value == product.truth[attribute]))
    return answers


def averaged_answers(products: list[ProductScores], temperature: float) -> list[tuple[str, float, bool]]:
    """The alternative rule, for comparison: the photos' calibrated probabilities averaged."""
    answers = []
    for product in products:
        for attribute, views in product.views.items():
            per_photo = [softmax(scores, temperature) for scores in views]
            mean = [sum(column) / len(per_photo) for column in zip(*per_photo, strict=True)]
            best = max(range(len(mean)), key=mean.__getitem__)
            correct = product.values[attribute][best] == product.truth[attribute]
            answers.append((attribute, mean[best], correct))
    return answers


def fit_fusion(products: list[ProductScores], temperature: float) -> FusionCalibration:
    """The fusion temperature with the least negative log-likelihood of the true values."""

    def nll(fusion_temperature: float) -> float:
        fusion, total = FusionCalibration(temperature=fusion_temperature), 0.0
        for product in products:
            for attribute, views in product.views.items():
                fused = fuse_scores(views, temperature, fusion)
                truth = product.values[attribute].index(product.truth[attribute])
                total -= math.log(max(fused.probabilities[truth], 1e-12))
        return total

    best = min(FUSION_TEMPERATURES, key=nll)
    return FusionCalibration(temperature=best, products=len(products))


def accuracy_by_attribute(answers: list[tuple[str, float, bool]]) -> dict[str, float]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for attribute, _, correct in answers:
        hits[attribute].append(correct)
    return {attribute: sum(values) / len(values) for attribute, values in sorted(hits.items())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/multi-photo-bench"))
    parser.add_argument("--train-products", type=int, default=TRAIN_PRODUCTS)
    parser.add_argument("--test-products", type=int, default=TEST_PRODUCTS)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--start-from", type=Path, default=DEMO_MODEL_DIR, help="the model fine-tuned")
    parser.add_argument("--reuse-model", action="store_true", help="skip training when the work dir has one")
    args = parser.parse_args(argv)
    model_dir = args.work_dir / "model"
    if not (args.reuse_model and (model_dir / METADATA_FILE).is_file()):
        model_dir = train_view_model(args.work_dir, args.start_from, args.epochs, args.train_products)
    model = DescriberModel.load(model_dir)
    temperature = model.calibration.temperature
    fit, _, _ = score_products(model, FIT_PRODUCTS, seed=21)
    fusion = fit_fusion(fit, temperature)
    metadata = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
    metadata["fusion"] = fusion.model_dump()
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    test, front_s, all_s = score_products(model, args.test_products, seed=31)
    front = _answers(test, temperature, fusion, front_only=True)
    fused = _answers(test, temperature, fusion, front_only=False)
    front_accuracy, fused_accuracy = accuracy_by_attribute(front), accuracy_by_attribute(fused)
    print(f"\n{'attribute':<16}{'front only':>12}{'all photos':>12}")
    for attribute, accuracy in fused_accuracy.items():
        print(f"{attribute:<16}{front_accuracy[attribute]:>12.3f}{accuracy:>12.3f}")
    macro_front = sum(front_accuracy.values()) / len(front_accuracy)
    macro_fused = sum(fused_accuracy.values()) / len(fused_accuracy)
    print(f"{'macro':<16}{macro_front:>12.3f}{macro_fused:>12.3f}")
    print(
        f"per-photo temperature {temperature:.3f}; "
        f"fusion temperature {fusion.temperature:.3f} (fitted on {FIT_PRODUCTS} other products)"
    )
    unscaled = _answers(test, temperature, FusionCalibration(), front_only=False)
    averaged = averaged_answers(test, temperature)
    rules = (
        ("front only", front),
        ("all photos: summed log-probabilities, fitted fusion temperature (shipped)", fused),
        ("all photos: summed log-probabilities, fusion temperature 1", unscaled),
        ("all photos: averaged probabilities", averaged),
    )
    for name, answers in rules:
        by_attribute = accuracy_by_attribute(answers)
        ece = expected_calibration_error([a[1] for a in answers], [a[2] for a in answers])
        print(f"{name}: macro accuracy {sum(by_attribute.values()) / len(by_attribute):.3f}, ECE {ece:.3f}")
    print(
        f"multi-photo: {args.test_products} products, accuracy {macro_fused:.3f} (all photos) vs "
        f"{macro_front:.3f} (front only), endpoint time per product {all_s:.3f}s vs {front_s:.3f}s"
    )


if __name__ == "__main__":
    main()
