"""A tiny end-to-end run: prepare -> LoRA train -> merge -> reload with no hub -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import Blip2ForConditionalGeneration, Blip2Processor

from describer_rules.catalogue import load_catalogue
from training import train as train_module
from training.dataset import prepare_dataset
from training.evaluate import evaluate, majority_answers, print_report
from training.model_dir import METADATA_FILE, read_metadata
from training.train import TrainingDiverged, parse_args, train


@pytest.fixture(scope="module")
def prepared(synthetic_kaggle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare_dataset(synthetic_kaggle, out, min_support=3, seed=0, split_by="products", progress=False)
    return out


def _args(prepared: Path, root: Path, *extra: str) -> list[str]:
    return [
        "--train-dir",
        str(prepared),
        "--model-dir",
        str(root / "model"),
        "--output-dir",
        str(root / "out"),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--learning-rate",
        "3e-3",
        "--no-progress",
        *extra,
    ]


def test_sagemaker_environment_supplies_the_channels() -> None:
    env = {
        "SM_CHANNEL_TRAIN": "/opt/ml/input/data/train",
        "SM_MODEL_DIR": "/opt/ml/model",
        "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
    }
    config = parse_args(["--epochs", "3", "--lora-r", "16"], env=env)
    assert config.train_dir == Path("/opt/ml/input/data/train")
    assert config.model_dir == Path("/opt/ml/model")
    assert config.output_dir == Path("/opt/ml/output/data")
    assert (config.epochs, config.lora_r, config.lora_alpha, config.lora_dropout) == (3, 16, 32, 0.05)
    assert config.lora_targets == "q,v"


def test_tiny_train_merges_reloads_and_evaluates(prepared: Path, tmp_path: Path) -> None:
    config = parse_args(_args(prepared, tmp_path, "--model-id", "describer-test"), env={})
    model_dir = train(config)

    assert len(config.history) == 2
    assert all(record["val_loss"] == record["val_loss"] for record in config.history)  # finite, not NaN
    for name in (
        "config.json",
        "model.safetensors",
        "processor_config.json",
        "catalogue.json",
        METADATA_FILE,
        "code/inference.py",
        "code/requirements.txt",
        "code/describer_rules/answers.py",
    ):
        assert (model_dir / name).is_file(), name
    metadata = read_metadata(model_dir)
    assert metadata.model_id == "describer-test"
    assert metadata.preset == "tiny"
    assert metadata.hyperparameters["lora_r"] == 8
    assert load_catalogue(model_dir / "catalogue.json") == load_catalogue(prepared / "catalogue.json")

    # Merged: a plain BLIP-2 with no LoRA layers, loadable offline.
    model = Blip2ForConditionalGeneration.from_pretrained(model_dir)
    Blip2Processor.from_pretrained(model_dir)
    assert not any("lora" in name for name, _ in model.named_parameters())

    report = evaluate(model_dir, prepared, split="test", out_dir=tmp_path / "eval", progress=False)
    assert report.questions > 0
    assert {score.attribute for score in report.attributes} >= {"Colour", "Article Type", "Pattern"}
    assert 0.0 <= report.macro_accuracy <= 1.0
    assert report.base_macro_accuracy is not None
    assert (tmp_path / "eval" / "evaluation.png").stat().st_size > 0
    assert (tmp_path / "eval" / "reliability.png").stat().st_size > 0
    written = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert written["model_id"] == "describer-test"
    assert sum(item["count"] for item in written["reliability"]) == report.questions  # every answer scored
    assert [point["review_share"] for point in written["coverage"]] == [0.05, 0.1, 0.2]
    shares = [point.answers_to_review for point in report.thresholds]
    assert [point.threshold for point in report.thresholds] == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert shares == sorted(shares)  # a higher threshold sends more to review
    # The temperature was fitted on the validation split and the held-out ECE is on the test split.
    assert metadata.calibration is not None and metadata.calibration.split == "val"
    assert report.calibration == metadata.calibration and report.calibration_held_out
    assert 0.0 <= report.expected_calibration_error <= 1.0


def test_evaluation_table_ends_with_the_macro_and_calibration_lines(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = parse_args(_args(prepared, tmp_path, "--epochs", "1"), env={})
    report = evaluate(train(config), prepared, compare_base=False, progress=False)
    print_report(report)
    last_lines = capsys.readouterr().out.strip().splitlines()[-4:]
    worst = max(
        (score for score in report.attributes if score.expected_calibration_error is not None),
        key=lambda score: score.expected_calibration_error or 0.0,
    )
    categories = {score.category for score in report.attributes} - {"generic"}
    assert last_lines == [
        f"categories: {len(categories)}",
        f"macro accuracy: {report.macro_accuracy:.2f}",
        f"expected calibration error: {report.expected_calibration_error:.3f}",
        f"worst attribute ECE: {worst.expected_calibration_error:.3f} ({worst.category}/{worst.attribute})",
    ]
    assert len(categories) >= 2 and {c.category for c in report.categories} == categories | {"generic"}


def test_nan_loss_stops_training_and_saves_nothing(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_loss = train_module.question_answer_loss

    def diverging(model: object, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return real_loss(model, batch) * float("nan")

    monkeypatch.setattr(train_module, "question_answer_loss", diverging)
    with pytest.raises(TrainingDiverged, match="no model was saved"):
        train(parse_args(_args(prepared, tmp_path), env={}))
    assert not (tmp_path / "model").exists()


def test_majority_baseline_does_not_know_the_article_type() -> None:
    rows = [
        {"article_type": "Tshirts", "attribute": "Article Type", "value": "Tshirts"},
        {"article_type": "Tshirts", "attribute": "Article Type", "value": "Tshirts"},
        {"article_type": "Shirts", "attribute": "Article Type", "value": "Shirts"},
        {"article_type": "Shirts", "attribute": "Fit", "value": "Slim Fit"},
        {"article_type": "Tshirts", "attribute": "Fit", "value": "Regular Fit"},
    ]
    majority = majority_answers(rows)
    assert majority[("generic", "Article Type")] == "Tshirts"
    assert majority[("Shirts", "Fit")] == "Slim Fit"
    assert majority[("Tshirts", "Fit")] == "Regular Fit"


def test_late_attributes_join_after_the_curriculum_epochs(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_batches = train_module.batches
    trained: list[set[str]] = []

    def recording(items: Any, size: int, generator: Any = None) -> Any:
        if generator is not None:  # the training loop's call, not evaluation's
            trained.append({row["attribute"] for item in items for row in item.rows})
        return real_batches(items, size, generator)

    monkeypatch.setattr(train_module, "batches", recording)
    extra = ("--epochs", "2", "--late-attributes", "Colour,Fit", "--late-after-epochs", "1")
    train(parse_args(_args(prepared, tmp_path, *extra), env={}))
    first, second = trained
    assert "Colour" not in first and "Fit" not in first and "Sleeve Length" in first
    assert {"Colour", "Fit", "Sleeve Length"} <= second
