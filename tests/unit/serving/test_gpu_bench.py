"""`make gpu-bench` refuses without a GPU, and its code runs end to end as a CPU dry run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import endpoint_gpu as gpu_bench


def test_without_a_gpu_it_measures_nothing_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu-bench.json"
    assert gpu_bench.main(["--out", str(out)]) == gpu_bench.NO_GPU_EXIT
    assert "no CUDA GPU" in capsys.readouterr().out
    assert not out.exists()


def test_a_cpu_dry_run_measures_every_path_and_writes_no_figures(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "gpu-bench.json"
    arguments = ["--device", "cpu", "--preset", "tiny", "--repeats", "1", "--products", "2", "--rounds", "1"]
    assert gpu_bench.main([*arguments, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "int8 skipped" in printed and "score 4 q" in printed
    assert printed.strip().splitlines()[-1].startswith("gpu-bench: cpu (dry run) float32 ")
    assert not out.exists()  # a dry run is no GPU measurement
