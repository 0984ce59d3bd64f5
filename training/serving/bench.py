"""`make bench`: the reference endpoint path against one vision pass + one batched decode, per product.

One process, one run. For each model, every product is a fresh image (so the vision cache never
helps across products) asked the same ``--questions`` catalogue questions three ways:

- reference: one request per question carrying the base64 image, decoded, preprocessed and run
  through a full ``Blip2ForConditionalGeneration.generate`` each time (the reference solution);
- ours, product request: one vision pass, all questions decoded as one batch;
- ours, one question per call: what the pipeline's Map sends; the first call runs the vision pass,
  the other calls find its features in the cache.

Models: (a) the demo model directory, (b) the ``proportional`` preset (BLIP-2's proportions scaled
down, random weights). Random weights end an answer at once, so (b) decodes a fixed answer length
(``--answer-tokens``) on every path; the trained demo model answers as it likes. Finally the
compute split between vision and language for the real blip2-flan-t5-xl config (meta device).
Paths take turns on each photo and the median counts; torch runs one thread by default, because on
a shared 2-core machine a second OpenMP thread mostly spin-waits (measured here: 13x slower under load).
The last line is ``speedup (b): N.Nx``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from describer_core.catalogue import DEFAULT_CATALOGUE_PATH, GENERIC_CATEGORY, Catalogue
from describer_core.contracts import Question, ReferenceRequest
from describer_core.model_files import CATALOGUE_FILE
from training.serving.inference import (
    JSON_CONTENT_TYPE,
    DescriberModel,
    VisionFeatureCache,
    decode_base64_image,
    decode_image,
    input_fn,
)

# Kaggle's full-size product photos are 1800x2400; the reference re-decodes one per question.
PHOTO_SIZE = (1080, 1440)
PROMPT_TOKENS = 16


# --- the reference path ---------------------------------------------------------------------------


@torch.inference_mode()
def reference_generate(model: DescriberModel, image_bytes: bytes, question: str) -> str:
    """The reference endpoint for one question: decode, preprocess, full BLIP-2 ``generate``."""
    inputs = model.processor(images=decode_image(image_bytes), text=question, return_tensors="pt")
    inputs = inputs.to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.model.dtype)
    output = model.model.generate(**inputs, max_new_tokens=model.max_new_tokens, do_sample=False, num_beams=1)
    return str(model.processor.tokenizer.batch_decode(output, skip_special_tokens=True)[0]).strip()


def reference_predict(model: DescriberModel, body: bytes) -> dict[str, str]:
    """A whole reference request: JSON and base64 decoded, then :func:`reference_generate`."""
    request = input_fn(body, JSON_CONTENT_TYPE)
    assert isinstance(request, ReferenceRequest)
    raw = reference_generate(model, decode_base64_image(request.image), request.prompt)
    return model.reference_answer(request.prompt, raw)


# --- workload -------------------------------------------------------------------------------------


def product_photo(seed: int, size: tuple[int, int] = PHOTO_SIZE) -> bytes:
    """A JPEG the size of a product photo: a garment-coloured block with texture on a light ground."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = np.full((height, width, 3), 245, dtype=np.uint8)
    colour = rng.integers(0, 255, 3)
    top, left = height // 6, width // 5
    block = np.clip(colour + rng.normal(0, 12, (height - 2 * top, width - 2 * left, 3)), 0, 255)
    pixels[top : height - top, left : width - left] = block.astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def benchmark_questions(catalogue: Catalogue, count: int) -> tuple[str, list[Question]]:
    """A category and ``count`` distinct attributes: its own, then other categories' until enough."""
    questions: list[Question] = []
    seen: set[str] = set()
    ordered = sorted(catalogue.categories, key=lambda category: category.name == GENERIC_CATEGORY)
    for category in ordered:
        for attribute, question in catalogue.questions(category.name):
            if attribute not in seen and len(questions) < count:
                seen.add(attribute)
                questions.append(Question(attribute=attribute, question=question))
    if len(questions) < count:
        raise ValueError(f"the catalogue has only {len(questions)} distinct attributes")
    return ordered[0].name, questions


@dataclass
class PathResult:
    model: str
    path: str
    vision_passes: float
    seconds_per_product: float

    @property
    def products_per_second(self) -> float:
        return 1.0 / self.seconds_per_product


def run_paths(
    label: str,
    model: DescriberModel,
    category: str,
    questions: Sequence[Question],
    products: int,
    progress: Progress,
) -> list[PathResult]:
    photos = [product_photo(seed) for seed in range(products + 1)]  # photo 0 warms every path up
    # What the reference client sends, built outside the timing: the endpoint's work is timed.
    reference_bodies = {
        photo: [
            json.dumps({"prompt": question.question, "image": base64.b64encode(photo).decode()}).encode()
            for question in questions
        ]
        for photo in photos
    }

    def reference(photo: bytes) -> None:
        for body in reference_bodies[photo]:
            reference_predict(model, body)

    def product_request(photo: bytes) -> None:
        model.describe_image(photo, questions, category)

    def question_per_call(photo: bytes) -> None:
        for question in questions:
            model.describe_image(photo, [question], category)

    paths: list[tuple[str, Callable[[bytes], None]]] = [
        ("reference: full call per question", reference),
        ("ours: one product request", product_request),
        ("ours: call per question (Map)", question_per_call),
    ]
    task = progress.add_task(label, total=(products + 1) * len(paths))
    seconds: dict[str, list[float]] = {name: [] for name, _ in paths}
    vision_passes: dict[str, int] = dict.fromkeys(seconds, 0)
    # Paths take turns on each photo, so a burst of load from elsewhere hits them alike.
    for index, photo in enumerate(photos):
        for name, run in paths:
            model.cache = VisionFeatureCache()  # cold: the photo has not been seen on this path
            started = time.perf_counter()
            run(photo)
            if index:  # photo 0 only warms up
                seconds[name].append(time.perf_counter() - started)
            vision_passes[name] += len(questions) if run is reference else model.cache.computations
            progress.advance(task)
    return [
        PathResult(label, name, vision_passes[name] / len(photos), statistics.median(seconds[name]))
        for name, _ in paths
    ]


# --- where the compute goes in the real model -----------------------------------------------------


@dataclass
class ComputeSplit:
    """Weight-matmul FLOPs (2 x weights x tokens they see; attention scores left out) of blip2-flan-t5-xl."""

    vision: float  # vision encoder + Q-Former + projection, once per image
    language: float  # Flan-T5 encoder + decoder, per question

    def reference(self, questions: int) -> float:
        return questions * (self.vision + self.language)

    def ours(self, questions: int) -> float:
        return self.vision + questions * self.language


def compute_split(prompt_tokens: int, answer_tokens: int) -> ComputeSplit:
    """Count on the meta device: the real config's shapes, no weights, no download."""
    from transformers import Blip2ForConditionalGeneration, Blip2VisionConfig

    from training.tiny import blip2_config

    config = blip2_config("blip2-flan-t5-xl")
    with torch.device("meta"):
        model = Blip2ForConditionalGeneration(config)
    vision_config = cast(Blip2VisionConfig, config.vision_config)
    patches = (cast(int, vision_config.image_size) // cast(int, vision_config.patch_size)) ** 2
    image_tokens = patches + 1
    queries = config.num_query_tokens
    encoder_tokens = queries + prompt_tokens

    def tokens_seen(name: str) -> int:
        if name.startswith("vision_model."):
            return patches if name.endswith("patch_embedding") else image_tokens
        if name.startswith("qformer."):
            if ".intermediate.dense" in name or (".output.dense" in name and "attention" not in name):
                return 0  # the Q-Former's text feed-forward: BLIP-2 passes it no text
            is_image_side = (
                ".crossattention.attention.key" in name or ".crossattention.attention.value" in name
            )
            return image_tokens if is_image_side else queries
        if name.startswith("language_projection"):
            return queries
        if name.startswith("language_model.encoder."):
            return encoder_tokens
        if ".EncDecAttention.k" in name or ".EncDecAttention.v" in name:
            return encoder_tokens  # keys and values of the encoder output, computed once per answer
        return answer_tokens  # decoder layers and the LM head run once per generated token

    vision = language = 0.0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
            continue
        flops = 2.0 * module.weight.numel() * tokens_seen(name)
        if name.startswith("language_model."):
            language += flops
        else:
            vision += flops
    return ComputeSplit(vision=vision, language=language)


# --- the run --------------------------------------------------------------------------------------


def load_proportional(work_dir: Path, answer_tokens: int) -> DescriberModel:
    from training.tiny import build_base_model_dir

    model_dir = build_base_model_dir("proportional", work_dir / "proportional")
    shutil.copyfile(DEFAULT_CATALOGUE_PATH, model_dir / CATALOGUE_FILE)
    model = DescriberModel.load(model_dir, max_new_tokens=answer_tokens)
    # Random weights would end every answer at once; a trained model writes "Attribute: Value".
    model.model.language_model.generation_config.min_new_tokens = answer_tokens
    return model


def results_table(results: Sequence[PathResult]) -> Table:
    table = Table(title="Per product (median over fresh photos; the same questions on every path)")
    for column in ("model", "path", "vision passes", "s / product", "products / s", "speedup"):
        is_label = column in ("model", "path")
        table.add_column(column, justify="left" if is_label else "right", no_wrap=is_label)
    baseline: dict[str, float] = {}
    for result in results:
        baseline.setdefault(result.model, result.seconds_per_product)
        table.add_row(
            result.model,
            result.path,
            f"{result.vision_passes:g}",
            f"{result.seconds_per_product:.3f}",
            f"{result.products_per_second:.2f}",
            f"{baseline[result.model] / result.seconds_per_product:.1f}x",
        )
    return table


def split_table(split: ComputeSplit, questions: int, prompt_tokens: int, answer_tokens: int) -> Table:
    table = Table(
        title=(
            f"blip2-flan-t5-xl compute per product of {questions} questions "
            f"(GFLOP; prompt {prompt_tokens} tokens, answer {answer_tokens} tokens)"
        )
    )
    for column in ("path", "vision", "language", "total", "vision share"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for path, vision, language in (
        ("reference", questions * split.vision, questions * split.language),
        ("ours", split.vision, questions * split.language),
    ):
        total = vision + language
        table.add_row(
            path,
            f"{vision / 1e9:,.0f}",
            f"{language / 1e9:,.0f}",
            f"{total / 1e9:,.0f}",
            f"{vision / total:.0%}",
        )
    table.caption = (
        f"FLOP-bound speedup: {split.reference(questions) / split.ours(questions):.1f}x "
        "(batching the decode adds to it on real hardware)"
    )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.serving.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--demo-model-dir", type=Path, required=True, help="model dir of (a)")
    parser.add_argument("--products", type=int, default=3, help="timed products per model (median)")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--answer-tokens", type=int, default=8, help="answer length decoded on (b)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 measures compute, not OpenMP spin-waits when other processes share the cores",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    console = Console(width=max(Console().width, 110))  # the tables stay readable when piped
    results: list[PathResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, tempfile.TemporaryDirectory() as work_dir:
        demo = DescriberModel.load(args.demo_model_dir)
        category, questions = benchmark_questions(demo.catalogue, args.questions)
        results += run_paths("(a) demo", demo, category, questions, args.products, progress)
        del demo
        proportional = load_proportional(Path(work_dir), args.answer_tokens)
        category, questions = benchmark_questions(proportional.catalogue, args.questions)
        results += run_paths("(b) proportional", proportional, category, questions, args.products, progress)

    console.print(results_table(results))
    split = compute_split(PROMPT_TOKENS, args.answer_tokens)
    console.print(split_table(split, args.questions, PROMPT_TOKENS, args.answer_tokens))
    proportional_results = [result for result in results if result.model.startswith("(b)")]
    speedup = proportional_results[0].seconds_per_product / proportional_results[1].seconds_per_product
    print(f"speedup (b): {speedup:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
