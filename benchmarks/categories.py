"""Choosing a category the upload does not name: a second round or one pass (``make category-bench``).

Prepare asks the endpoint the article-type question first and the Map then asks the chosen
category's questions (two calls; the second finds the image's vision features in the endpoint's
cache). The alternative is one call asking the article type together with every category's questions
and keeping those of the category the model chose. Both run here in process on the demo model, over
held-out products of its prepared data, timing what the endpoint computes (vision pass, scoring);
the last line compares them per product.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from describer_rules.catalogue import GENERIC_CATEGORY
from describer_rules.contracts import Question
from endpoint.model import DescriberModel
from endpoint.vision_cache import VisionFeatureCache
from training.dataset import read_qa_rows
from training.modeling import group_by_image


def _questions(model: DescriberModel, category: str) -> list[Question]:
    return [Question(attribute=a, question=q) for a, q in model.catalogue.questions(category)]


def run(model_dir: Path, data_dir: Path, products: int) -> tuple[float, float, int, int]:
    """(two-round ms, one-pass ms, questions the one pass asks, products) per product, means."""
    model = DescriberModel.load(model_dir)
    article = _questions(model, GENERIC_CATEGORY)[:1]
    categories = [c.name for c in model.catalogue.categories if c.name != GENERIC_CATEGORY]
    every = article + [question for name in categories for question in _questions(model, name)]
    items = group_by_image(read_qa_rows(data_dir / "vqa_test.csv"), data_dir)[:products]
    two_rounds = one_pass = 0.0
    for item in items:
        data = item.image.read_bytes()
        model.cache = VisionFeatureCache()  # a photo the endpoint has not seen
        started = time.perf_counter()
        _, features = model.image_features(data)
        [answer], _ = model.score_and_answer(features, article, GENERIC_CATEGORY)
        _, features = model.image_features(data)  # the second call: a cache hit
        model.score_and_answer(features, _questions(model, answer.value), answer.value)
        two_rounds += time.perf_counter() - started
        model.cache = VisionFeatureCache()
        started = time.perf_counter()
        _, features = model.image_features(data)
        model.score_and_answer(features, every, GENERIC_CATEGORY)
        one_pass += time.perf_counter() - started
    count = max(1, len(items))
    return two_rounds * 1000 / count, one_pass * 1000 / count, len(every), len(items)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=Path(".cache/demo-model"))
    parser.add_argument("--data", type=Path, default=Path(".cache/demo-data"))
    parser.add_argument("--products", type=int, default=40)
    args = parser.parse_args(argv)
    two, one, asked, count = run(args.model_dir, args.data, args.products)
    print(
        f"category: second round {two:.1f} ms per product (article type, then the category's questions), "
        f"one pass {one:.1f} ms per product ({asked} questions), {count} products"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
