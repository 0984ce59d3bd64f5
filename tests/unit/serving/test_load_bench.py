"""How `make load-bench` sums up a level's turns, and the ratio its last line and `make cost` use."""

from __future__ import annotations

import pytest

from training.serving.endpoint_figures import LoadFigures
from training.serving.load_bench import LevelRun, summarise


def _run(concurrency: int, latencies: list[float], wall_s: float, failed: int = 0) -> LevelRun:
    return LevelRun(concurrency, True, latencies, failed, wall_s, len(latencies), 1, 2)


def test_turns_add_up_to_products_over_their_summed_wall_time() -> None:
    level = summarise([_run(16, [1.0] * 16, 8.0), _run(16, [2.0] * 15 + [9.0], 8.0, failed=1)])
    assert level.products == 33 and level.failed == 1
    assert level.products_per_s == pytest.approx(32 / 16.0)  # failed products are not throughput
    assert level.p50_s == pytest.approx(1.5)
    assert level.p95_s == pytest.approx(2.0)  # the 30th of 32 sorted latencies (nearest rank)
    assert (level.vision_passes, level.vision_batches, level.decoder_batches) == (32, 2, 4)


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
