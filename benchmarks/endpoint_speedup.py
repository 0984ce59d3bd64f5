"""`make bench`: the reference endpoint path against one vision pass + one batched decode, per product.

One process, one run. For each model, every product is a fresh image (so the vision cache never
helps across products) asked the same ``--questions`` catalogue questions three ways:

- reference: one request per question carrying the base64 image, decoded, preprocessed and run
  through a full ``Blip2ForConditionalGeneration.generate`` each time (the reference solution);
- ours, product request: one vision pass, all questions decoded as one batch;
- ours, one question per call (``QuestionsPerCall`` 1, the pipeline before question groups): the
  first call runs the vision pass, the other calls find its features in the cache;
- ours, the pipeline: the image in S3 (moto's server), the questions grouped as Prepare groups them
  (``QuestionsPerCall`` default), each group one HTTP ``InvokeEndpoint`` from the AskAttribute code
  (``ask_attributes``, with its routing id and body) to the local model host running the real
  ``inference.py``, the groups in parallel as the Map sends them.

Answers to questions with a vocabulary are scored (one encoder pass per question, one batched
decoder pass over every candidate); the bench also times that against greedy generation of the
same questions over the same cached features.

Models: (a) the demo model directory, (b) the ``proportional`` preset (BLIP-2's proportions scaled
down, random weights). Random weights end an answer at once, so (b) decodes a fixed answer length
(``--answer-tokens``) on every path; the trained demo model answers as it likes. Finally the
compute split between vision and language for the real blip2-flan-t5-xl config (meta device).
Paths take turns on each photo and the median counts; torch runs one thread by default, because on
a shared 2-core machine a second OpenMP thread mostly spin-waits (measured here: 13x slower under load).
The last two lines are ``speedup (b): N.Nx`` (one product request) and ``pipeline speedup (b): N.Nx``
(the pipeline's own path), both against the reference path on (b).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import boto3
import numpy as np
import torch
from botocore.config import Config
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from describer_rules.catalogue import DEFAULT_CATALOGUE_PATH, GENERIC_CATEGORY, Catalogue, load_catalogue
from describer_rules.contracts import Question, ReferenceRequest, S3ObjectRef
from describer_rules.endpoint_calls import DEFAULT_QUESTIONS_PER_CALL, group_questions
from describer_rules.model_files import CATALOGUE_FILE
from describer_steps.ask_attribute import ask_attributes
from describer_steps.states import AskInput
from endpoint import inference
from endpoint.inference import input_fn
from endpoint.model import DescriberModel
from endpoint.requests import JSON_CONTENT_TYPE, decode_base64_image, decode_image
from endpoint.vision_cache import VisionFeatureCache

# Kaggle's full-size product photos are 1800x2400; the reference re-decodes one per question.
PHOTO_SIZE = (1080, 1440)
PROMPT_TOKENS = 16
BUCKET = "bench-uploads"
ENDPOINT = "bench-endpoint"
# The template's MapConcurrency default: Map items in flight at once per product.
MAP_CONCURRENCY = 4


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
    """A category and ``count`` distinct attributes: its own, then other categories' until enough.

    Questions drawn from several categories are asked as of an uncategorised (generic) product, for
    which the endpoint scores each attribute with its own category's vocabulary.
    """
    questions: list[Question] = []
    seen: set[str] = set()
    ordered = sorted(catalogue.categories, key=lambda category: category.name == GENERIC_CATEGORY)
    first = {attribute for attribute, _ in catalogue.questions(ordered[0].name)}
    for category in ordered:
        for attribute, question in catalogue.questions(category.name):
            if attribute not in seen and len(questions) < count:
                seen.add(attribute)
                questions.append(Question(attribute=attribute, question=question))
    if len(questions) < count:
        raise ValueError(f"the catalogue has only {len(questions)} distinct attributes")
    return (ordered[0].name if seen <= first else GENERIC_CATEGORY), questions


@dataclass
class PathResult:
    model: str
    path: str
    vision_passes: float
    seconds_per_product: float

    @property
    def products_per_second(self) -> float:
        return 1.0 / self.seconds_per_product


class PipelineCalls:
    """The pipeline's endpoint calls: images in moto's S3, AskAttribute's code, the local model host."""

    def __init__(self, s3_url: str, host_url: str, runtime_config: Config | None = None) -> None:
        session = boto3.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        self.s3 = session.client("s3", endpoint_url=s3_url)
        self.s3.create_bucket(Bucket=BUCKET)
        self.runtime = session.client("sagemaker-runtime", endpoint_url=host_url, config=runtime_config)
        self.catalogue = load_catalogue()

    def upload(self, photo: bytes, key: str) -> S3ObjectRef:
        version = self.s3.put_object(Bucket=BUCKET, Key=key, Body=photo).get("VersionId")
        return S3ObjectRef(bucket=BUCKET, key=key, version_id=version)

    def ask(self, item: AskInput) -> None:
        ask_attributes(item, self.runtime, ENDPOINT, self.catalogue)


@contextmanager
def pipeline_calls_to(model: DescriberModel, runtime_config: Config | None = None) -> Iterator[PipelineCalls]:
    """moto's S3 server and a local model host serving ``model`` through ``inference.py``, on free ports."""
    from moto.server import ThreadedMotoServer

    from describer.local.model_host import ModelHost
    from describer.local.model_host.description_backends import OfflineWriter
    from endpoint.serve import EntryPoint

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    s3_server = ThreadedMotoServer(port=0, verbose=False)
    s3_server.start()
    s3_url = f"http://127.0.0.1:{s3_server.get_host_and_port()[1]}"
    host = ModelHost(("127.0.0.1", 0), EntryPoint.of(inference, model), [ENDPOINT], OfflineWriter())
    thread = threading.Thread(target=host.serve_forever, daemon=True)
    thread.start()
    # The endpoint reads the image with its own S3 client, which takes its endpoint from the environment.
    saved = {
        name: os.environ.get(name)
        for name in (
            "AWS_ENDPOINT_URL_S3",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
        )
    }
    os.environ.update(
        AWS_ENDPOINT_URL_S3=s3_url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        yield PipelineCalls(s3_url, f"http://127.0.0.1:{host.server_address[1]}", runtime_config)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        host.shutdown()
        host.server_close()
        s3_server.stop()


def run_paths(
    label: str,
    model: DescriberModel,
    category: str,
    questions: Sequence[Question],
    products: int,
    progress: Progress,
    pipeline: PipelineCalls,
    per_call: int,
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

    groups = group_questions(questions, per_call)
    images = {
        photo: pipeline.upload(photo, f"incoming/{category}/{index}.jpg")
        for index, photo in enumerate(photos)
    }

    def pipeline_calls(photo: bytes) -> None:
        items = [AskInput(image=images[photo], category=category, questions=group) for group in groups]
        with ThreadPoolExecutor(min(MAP_CONCURRENCY, len(items))) as pool:
            list(pool.map(pipeline.ask, items))

    paths: list[tuple[str, Callable[[bytes], None]]] = [
        ("reference: full call per question", reference),
        ("ours: one product request", product_request),
        ("ours: call per question", question_per_call),
        (f"ours: pipeline, {len(groups)} HTTP call{'s' * (len(groups) > 1)} of <={per_call}", pipeline_calls),
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


def decoding_seconds(
    model: DescriberModel, category: str, questions: Sequence[Question], products: int
) -> tuple[float, float]:
    """Median seconds to score every vocabulary value vs to generate greedily, the same cached features."""
    prompts = [question.question for question in questions]
    scoring, greedy = [], []
    for seed in range(products + 1):
        features = model.encode_image(decode_image(product_photo(seed)))
        started = time.perf_counter()
        model.score_and_answer(features, questions, category)
        middle = time.perf_counter()
        model.generate_answers(features, prompts)
        if seed:  # the first photo only warms up
            scoring.append(middle - started)
            greedy.append(time.perf_counter() - middle)
    return statistics.median(scoring), statistics.median(greedy)


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


def load_proportional(work_dir: Path, answer_tokens: int, preset: str = "proportional") -> DescriberModel:
    """The preset (default ``proportional``) with random weights, the catalogue, a fixed answer length."""
    from training.tiny import build_base_model_dir

    model_dir = build_base_model_dir(preset, work_dir / preset)
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
        prog="python -m benchmarks.endpoint_speedup", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--demo-model-dir", type=Path, required=True, help="model dir of (a)")
    parser.add_argument("--products", type=int, default=3, help="timed products per model (median)")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--answer-tokens", type=int, default=8, help="answer length decoded on (b)")
    parser.add_argument(
        "--questions-per-call",
        type=int,
        default=DEFAULT_QUESTIONS_PER_CALL,
        help="the pipeline path's group size (the template's QuestionsPerCall)",
    )
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

        def run_model(label: str, model: DescriberModel) -> tuple[str, list[Question]]:
            category, questions = benchmark_questions(model.catalogue, args.questions)
            with pipeline_calls_to(model) as pipeline:
                results.extend(
                    run_paths(
                        label,
                        model,
                        category,
                        questions,
                        args.products,
                        progress,
                        pipeline,
                        args.questions_per_call,
                    )
                )
            return category, questions

        run_model("(a) demo", DescriberModel.load(args.demo_model_dir))
        proportional = load_proportional(Path(work_dir), args.answer_tokens)
        category, questions = run_model("(b) proportional", proportional)
        scoring, greedy = decoding_seconds(proportional, category, questions, args.products)

    console.print(results_table(results))
    split = compute_split(PROMPT_TOKENS, args.answer_tokens)
    console.print(split_table(split, args.questions, PROMPT_TOKENS, args.answer_tokens))
    console.print(
        f"(b), {args.questions} questions over cached vision features (median): scoring every vocabulary "
        f"value {scoring:.3f} s, greedy generation of {args.answer_tokens} tokens {greedy:.3f} s"
    )
    reference, product_request, _, pipeline_path = [r for r in results if r.model.startswith("(b)")]
    print(f"speedup (b): {reference.seconds_per_product / product_request.seconds_per_product:.1f}x")
    print(f"pipeline speedup (b): {reference.seconds_per_product / pipeline_path.seconds_per_product:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
