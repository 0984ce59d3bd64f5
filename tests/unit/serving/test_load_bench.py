"""How `make load-bench` sums up a level's turns, and the ratio its last line and `make cost` use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.endpoint_load import LevelRun, main, steady_state, summarise
from describer.endpoint_figures import LoadFigures


def _run(
    concurrency: int, latencies: list[float], window_s: float, failed: int = 0, in_window: int | None = None
) -> LevelRun:
    answered = len(latencies) if in_window is None else in_window
    return LevelRun(
        concurrency, True, latencies, failed, window_s, answered, 0.5 * len(latencies), len(latencies), 1, 2
    )


def test_turns_add_up_to_products_answered_while_every_client_was_busy() -> None:
    level = summarise([_run(16, [1.0] * 16, 8.0), _run(16, [2.0] * 15 + [9.0], 8.0, failed=1, in_window=12)])
    assert level.products == 33 and level.failed == 1
    # Failed products and those answered after the first client was done are not throughput.
    assert level.products_per_s == pytest.approx((16 + 12) / 16.0)
    assert level.p50_s == pytest.approx(1.5)
    assert level.p95_s == pytest.approx(2.0)  # the 30th of 32 sorted latencies (nearest rank)
    assert (level.vision_passes, level.vision_batches, level.decoder_batches) == (32, 2, 4)
    assert level.cpu_s_per_product == pytest.approx(0.5)


def test_the_steady_state_starts_at_the_first_answer_and_ends_when_the_first_client_is_done() -> None:
    # Four clients started at 0: nothing is answered before 3.0 (the ramp), the first client is
    # done at 9.0; the answers at 3.0 (the window's start) and 10.0 (the tail) do not count.
    answered_at = [3.0, 3.5, 4.0, 6.0, 9.0, 10.0]
    start, end = steady_state(0.0, answered_at, 9.0)
    assert (start, end) == (3.0, 9.0)
    assert sum(1 for ended in answered_at if start < ended <= end) == 4
    # One product a client: no answer after the first, so the window is the whole level.
    assert steady_state(0.0, [3.0, 3.0, 3.2], 3.0) == (0.0, 3.0)
    assert steady_state(0.0, [], 1.0) == (0.0, 1.0)


def test_the_gain_is_throughput_at_16_over_1() -> None:
    one, sixteen = summarise([_run(1, [0.5] * 4, 2.0)]), summarise([_run(16, [4.0] * 16, 5.0)])
    figures = LoadFigures(
        measured_at="now",
        config="proportional",
        torch_threads=1,
        load_average="1 1 1",
        window_ms=5,
        max_batch=8,
        levels=[one, sixteen],
    )
    assert figures.gain == pytest.approx((16 / 5.0) / (4 / 2.0))
    assert figures.p95_ratio == pytest.approx(4.0 / 0.5)
    with pytest.raises(KeyError):
        figures.level(4)


def test_the_bench_runs_end_to_end_over_http_and_writes_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole bench on the tiny preset, a few products a level: table, figures, last line."""
    out = tmp_path / "load-bench.json"
    arguments = ["--preset", "tiny", "--turns", "1", "--rounds", "1", "--min-products", "2"]
    assert main([*arguments, "--out", str(out)]) == 0

    figures = LoadFigures.model_validate_json(out.read_text())
    assert [(level.concurrency, level.batching) for level in figures.levels] == [
        (1, True),
        (4, True),
        (16, True),
        (16, False),
    ]
    assert all(level.failed == 0 and level.vision_passes == level.products for level in figures.levels)
    sixteen = figures.level(16)
    assert sixteen.products == 16 and sixteen.decoder_batches < 2 * sixteen.products  # calls met in batches
    assert figures.level(16, batching=False).decoder_batches == 2 * sixteen.products  # one per call
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(
        r"load: throughput at 16 concurrent \d+\.\dx of 1 concurrent, p95 latency \d+\.\dx", last
    ), last
