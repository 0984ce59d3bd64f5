"""Measured endpoint figures that ``make cost`` uses in place of the modelled GPU seconds.

``make load-bench`` writes ``.cache/load-bench.json`` (``LoadFigures``): products/s and the
process's CPU seconds per product at 1, 4 and 16 concurrent products on the ``proportional`` config
over HTTP. Its gain for ``make cost`` is the CPU time per product alone over that at 16
(``cpu_gain``): on the shared machine it runs on, wall-clock throughput mostly measures how much of
the cores the scheduler gives the bench, CPU time what answering a product costs.
``make gpu-bench`` writes ``.cache/gpu-bench.json`` (``GpuFigures``) on a GPU machine: the full
blip2-flan-t5-xl's seconds per call and per further question, and its own gain at 16 (a dedicated
machine: throughput). ``endpoint_timing`` picks, per quantity, the measured figure when
there is one and the model's assumption otherwise, and says which.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from describer.sagemaker.scaling import (
    GPU_SECONDS_PER_CALL,
    GPU_SECONDS_PER_EXTRA_QUESTION,
    gpu_seconds_per_call,
)

FIGURES_DIR = Path(__file__).resolve().parents[2] / ".cache"
LOAD_BENCH_FILE = FIGURES_DIR / "load-bench.json"
GPU_BENCH_FILE = FIGURES_DIR / "gpu-bench.json"


class LoadLevel(BaseModel):
    concurrency: int
    batching: bool
    products: int
    failed: int
    products_per_s: float
    cpu_s_per_product: float = 0.0
    p50_s: float
    p95_s: float
    vision_passes: int
    vision_batches: int
    decoder_batches: int


class LoadFigures(BaseModel):
    measured_at: str
    config: str
    torch_threads: int
    load_average: str
    window_ms: float
    max_batch: int
    levels: list[LoadLevel]

    def level(self, concurrency: int, batching: bool = True) -> LoadLevel:
        for level in self.levels:
            if (level.concurrency, level.batching) == (concurrency, batching):
                return level
        raise KeyError(f"no level at {concurrency} concurrent (batching {batching})")

    @property
    def gain(self) -> float:
        """Throughput at 16 concurrent over 1 concurrent."""
        return self.level(16).products_per_s / self.level(1).products_per_s

    @property
    def cpu_gain(self) -> float:
        """CPU seconds per product at 1 concurrent over those at 16; 0 if not measured."""
        one, sixteen = self.level(1).cpu_s_per_product, self.level(16).cpu_s_per_product
        return one / sixteen if one > 0 and sixteen > 0 else 0.0

    @property
    def p95_ratio(self) -> float:
        return self.level(16).p95_s / self.level(1).p95_s


class GpuFigures(BaseModel):
    measured_at: str
    device: str
    dtype: str
    seconds_per_call: float  # a vision pass and its first question scored
    seconds_per_extra_question: float
    gain: float  # products/s at 16 concurrent over 1


class EndpointTiming(BaseModel):
    """Endpoint seconds of a call, and how many products an instance serves at once for one alone."""

    seconds_per_call: float = GPU_SECONDS_PER_CALL
    seconds_per_extra_question: float = GPU_SECONDS_PER_EXTRA_QUESTION
    gain: float = 1.0
    seconds_source: str = "modelled"
    gain_source: str = "none (one request at a time)"

    def seconds(self, calls: float, questions: float) -> float:
        """Instance seconds for ``calls`` calls asking ``questions`` questions in all."""
        if not calls:
            return 0.0
        per_call = gpu_seconds_per_call(
            questions / calls, self.seconds_per_call, self.seconds_per_extra_question
        )
        return calls * per_call / self.gain


def _read(model: type[BaseModel], path: Path) -> BaseModel | None:
    try:
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None


def endpoint_timing(load_file: Path = LOAD_BENCH_FILE, gpu_file: Path = GPU_BENCH_FILE) -> EndpointTiming:
    """The GPU bench's figures if measured, else the modelled seconds with the load bench's gain."""
    gpu = _read(GpuFigures, gpu_file)
    if isinstance(gpu, GpuFigures):
        source = f"measured: make gpu-bench, {gpu.device} {gpu.dtype}, {gpu.measured_at}"
        return EndpointTiming(
            seconds_per_call=gpu.seconds_per_call,
            seconds_per_extra_question=gpu.seconds_per_extra_question,
            gain=gpu.gain,
            seconds_source=source,
            gain_source=source,
        )
    load = _read(LoadFigures, load_file)
    if isinstance(load, LoadFigures):
        try:
            gain = load.cpu_gain
        except KeyError:
            return EndpointTiming()
        if gain <= 0:
            return EndpointTiming()
        return EndpointTiming(
            gain=gain,
            gain_source=(
                f"measured: make load-bench, CPU s per product at 1 over 16 concurrent, "
                f"{load.config} config on CPU, {load.measured_at}"
            ),
        )
    return EndpointTiming()
