"""`make gpu-bench`: the full blip2-flan-t5-xl on a GPU, random weights, bf16 and 8-bit, the endpoint's paths.

No download: the published configuration (``training.tiny.blip2_config("blip2-flan-t5-xl")``, 3.9 B
parameters) is built with random weights straight on the GPU, with this project's tokenizer (the
Flan-T5 vocabulary size is kept). Random weights answer nonsense, but every path costs what it
costs with trained ones: scoring decodes every vocabulary value, generation is held to
``--answer-tokens`` tokens. For each precision (bf16; 8-bit with bitsandbytes' ``LLM.int8``):

- the vision pass (encoder + Q-Former + projection) of one product photo;
- scoring one question group of each size 1 .. ``QuestionsPerCall`` over cached features
  (``score_and_answer``, the endpoint's own code);
- greedy generation of one group;
- peak GPU memory;
- products/s with 1 and with 16 products at a time, each product's groups in parallel as the Map
  sends them, through the cross-request batcher (``endpoint/batching.py``).

The bf16 figures go to ``.cache/gpu-bench.json`` (seconds per call = vision + one question scored,
seconds per further question, the gain at 16), which ``make cost`` uses in place of its modelled
GPU seconds. Last line: ``gpu-bench: <device> bf16 N.NN products/s at 16 concurrent (N.Nx of 1),
call V.VVV s + Q.QQQ s a further question``.

Without a CUDA GPU it measures nothing: it prints why and exits with status 2 (a bench that could
not run is not a pass). ``--device cpu --preset proportional`` runs the same code on a CPU, a dry
run of the script, and writes no figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from transformers import BitsAndBytesConfig, Blip2ForConditionalGeneration

from benchmarks.endpoint_speedup import benchmark_questions, product_photo
from describer.endpoint_figures import GPU_BENCH_FILE, GpuFigures
from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import Question
from describer_rules.endpoint_calls import DEFAULT_QUESTIONS_PER_CALL, group_questions
from endpoint.batching import BatchSettings
from endpoint.model import DescriberModel
from endpoint.requests import decode_image
from endpoint.vision_cache import VisionFeatureCache
from training.tiny import PRESETS, blip2_config, build_processor, build_tokenizer, image_token_id

NO_GPU_EXIT = 2
CONCURRENCY = (1, 16)


def build_model(preset: str, device: torch.device, precision: str, work_dir: Path) -> Any:
    """The preset's BLIP-2 with random weights in ``precision`` (bfloat16, or int8 via bitsandbytes)."""
    tokenizer = build_tokenizer()
    config = blip2_config(preset, vocab_size=len(tokenizer), image_token_index=image_token_id(tokenizer))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with device:
        model = Blip2ForConditionalGeneration._from_config(config, dtype=dtype)
    if precision == "bfloat16":
        return model.eval()
    # LLM.int8 quantizes at load: save the random weights once, load them back quantized.
    saved = work_dir / f"{preset}-weights"
    if not saved.exists():
        model.save_pretrained(saved)
    del model
    torch.cuda.empty_cache()
    quantized = Blip2ForConditionalGeneration.from_pretrained(
        saved,
        quantization_config=BitsAndBytesConfig(load_in_8bit=True),
        dtype=torch.bfloat16,
        device_map={"": device.index or 0},
    )
    return quantized.eval()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, run: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``run`` after one warm-up."""
    run()
    seconds = []
    for _ in range(repeats):
        _synchronize(device)
        started = time.perf_counter()
        run()
        _synchronize(device)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def products_per_second(
    model: DescriberModel,
    category: str,
    groups: Sequence[Sequence[Question]],
    concurrency: int,
    products: int,
) -> float:
    """Products answered per second with ``concurrency`` at a time, each product's groups in parallel."""
    photos = [product_photo(5000 + concurrency * 1000 + index) for index in range(products)]
    model.cache = VisionFeatureCache()
    batcher = model.batcher

    def call(photo: bytes, group: Sequence[Question]) -> None:
        if batcher is None:
            model.describe_image(photo, group, category)
            return
        with batcher.request():
            model.describe_image(photo, group, category)

    def product(photo: bytes) -> None:
        with ThreadPoolExecutor(len(groups)) as pool:
            list(pool.map(lambda group: call(photo, group), groups))

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as clients:
        list(clients.map(product, photos))
    _synchronize(model.device)
    return products / (time.perf_counter() - started)


def measure(
    label: str, model: DescriberModel, questions: Sequence[Question], per_call: int, args: argparse.Namespace
) -> dict[str, Any]:
    device = model.device
    category = args.category
    image = decode_image(product_photo(1))
    vision = timed(device, lambda: model.encode_image(image), args.repeats)
    features = model.encode_image(image)
    batcher, model.batcher = model.batcher, None  # the passes alone, then the batcher under load

    def score(size: int) -> Callable[[], object]:
        return lambda: model.score_and_answer(features, questions[:size], category)

    scoring = {size: timed(device, score(size), args.repeats) for size in range(1, per_call + 1)}
    prompts = [question.question for question in questions[:per_call]]
    generation = timed(device, lambda: model.generate_answers(features, prompts), args.repeats)
    model.batcher = batcher
    groups = group_questions(questions, per_call)
    throughput = {
        concurrency: products_per_second(
            model, category, groups, concurrency, max(args.products, concurrency * args.rounds)
        )
        for concurrency in CONCURRENCY
    }
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {
        "label": label,
        "vision": vision,
        "scoring": scoring,
        "generation": generation,
        "peak_gib": peak,
        "throughput": throughput,
    }


def results_table(results: Sequence[dict[str, Any]], preset: str, per_call: int, answer_tokens: int) -> Table:
    table = Table(title=f"{preset} (random weights): seconds per pass (median), peak memory, throughput")
    columns = [
        "precision",
        "vision pass",
        *(f"score {size} q" for size in range(1, per_call + 1)),
        f"generate {per_call} q x {answer_tokens} tok",
        "peak GiB",
        *(f"products/s at {c}" for c in CONCURRENCY),
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == "precision" else "right")
    for result in results:
        table.add_row(
            result["label"],
            f"{result['vision']:.4f}",
            *(f"{result['scoring'][size]:.4f}" for size in range(1, per_call + 1)),
            f"{result['generation']:.4f}",
            f"{result['peak_gib']:.1f}",
            *(f"{result['throughput'][c]:.2f}" for c in CONCURRENCY),
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.endpoint_gpu", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--preset", choices=PRESETS, default="blip2-flan-t5-xl")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run of the script")
    parser.add_argument("--precision", action="append", choices=("bfloat16", "int8"), help="default: both")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--questions-per-call", type=int, default=DEFAULT_QUESTIONS_PER_CALL)
    parser.add_argument("--answer-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--products", type=int, default=8, help="products at least per concurrency level")
    parser.add_argument("--rounds", type=int, default=2, help="products per client at 16 concurrent")
    parser.add_argument("--out", type=Path, default=GPU_BENCH_FILE)
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 120))

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "gpu-bench: no CUDA GPU on this machine (torch.cuda.is_available() is False): nothing measured, "
            "and make cost keeps its modelled endpoint seconds. Run it on a GPU instance "
            "(docs/benchmarks.md)."
        )
        return NO_GPU_EXIT
    precisions = args.precision or ["bfloat16", "int8"]
    if "int8" in precisions and (device.type != "cuda" or importlib.util.find_spec("bitsandbytes") is None):
        console.print("int8 skipped: it needs a CUDA GPU and bitsandbytes")
        precisions = [precision for precision in precisions if precision != "int8"]

    catalogue = load_catalogue()
    processor = build_processor(args.preset, build_tokenizer())
    args.category, questions = benchmark_questions(catalogue, args.questions)
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as work_dir:
        for precision in precisions:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            console.print(f"building {args.preset} ({precision}) with random weights on {device} ...")
            network = build_model(args.preset, device, precision, Path(work_dir))
            network.language_model.generation_config.min_new_tokens = args.answer_tokens
            model = DescriberModel(
                network,
                processor,
                catalogue,
                f"gpu-bench-{args.preset}-{precision}",
                max_new_tokens=args.answer_tokens,
                batching=BatchSettings.resolve({}),
            )
            label = "int8" if precision == "int8" else str(network.dtype).removeprefix("torch.")
            results.append(measure(label, model, questions, args.questions_per_call, args))
            del model, network
            if device.type == "cuda":
                torch.cuda.empty_cache()

    console.print(results_table(results, args.preset, args.questions_per_call, args.answer_tokens))
    first = results[0]
    per_call = first["vision"] + first["scoring"][1]
    extra = (first["scoring"][args.questions_per_call] - first["scoring"][1]) / max(
        1, args.questions_per_call - 1
    )
    gain = first["throughput"][16] / first["throughput"][1]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (dry run)"
    if device.type == "cuda" and args.preset == "blip2-flan-t5-xl" and first["label"] == "bfloat16":
        figures = GpuFigures(
            measured_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            device=name,
            dtype="bfloat16",
            seconds_per_call=per_call,
            seconds_per_extra_question=extra,
            gain=gain,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(figures.model_dump_json(indent=2) + "\n", encoding="utf-8")
        console.print(f"figures for make cost in {args.out}")
    print(
        f"gpu-bench: {name} {first['label']} {first['throughput'][16]:.2f} products/s at 16 concurrent "
        f"({gain:.1f}x of 1), call {per_call:.3f} s + {extra:.3f} s a further question"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
