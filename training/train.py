"""Fine-tuning entrypoint: BLIP-2 + LoRA on prepared question/answer pairs, merged into one model dir.

Follows the SageMaker training-job conventions, so the same file runs locally (``describer train``)
and as a SageMaker job: hyperparameters arrive as ``--name value`` arguments; the data channel is
``SM_CHANNEL_TRAIN`` (the output of ``describer dataset prepare``: ``vqa_train.csv``,
``vqa_val.csv``, ``images/``, ``catalogue.json``; a separate ``SM_CHANNEL_VALIDATION`` may hold
the validation CSV; ``--extra-pairs`` adds Q/A pairs such as reviewers' corrections); the merged
model goes to ``SM_MODEL_DIR``; history and metrics to ``SM_OUTPUT_DATA_DIR``.

Fixes over the reference: label padding masked (-100); attention masks passed; a learning rate that
does not diverge, and if the loss still becomes NaN/inf training stops with an error and no model is
written; evaluation every epoch with the best epoch kept; LoRA merged so the endpoint never needs
the base model; the endpoint's confidence temperature fitted on the validation split
(``training.served_answers.calibrate_model_dir``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from describer_rules.answers import parse_answer
from describer_rules.catalogue import Catalogue, load_catalogue
from training.dataset import attribute_spec, read_qa_rows
from training.model_dir import CATALOGUE_FILE, ModelMetadata, write_model_dir
from training.modeling import (
    ImageQuestions,
    batches,
    encode_batch,
    generate_answers,
    group_by_image,
    question_answer_loss,
)
from training.served_answers import calibrate_model_dir
from training.tiny import build_base_model_dir, catalogue_texts
from training.train_config import (
    OFFLINE_PRESETS,
    PRESET_TRAINABLE_MODULES,
    TrainConfig,
    parse_args,
)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; nothing was saved."""


def _seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _use_quantization(config: TrainConfig) -> str | None:
    if config.quantization == "auto":
        return "8bit" if torch.cuda.is_available() else None
    if config.quantization == "none":
        return None
    if not torch.cuda.is_available():
        raise ValueError(f"--quantization {config.quantization} needs CUDA (bitsandbytes); use none on CPU")
    return config.quantization


def _compute_dtype() -> torch.dtype:
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def resolve_base_model(
    config: TrainConfig, catalogue: Catalogue, work_dir: Path
) -> tuple[Path | str, str | None]:
    """The directory or hub id to load, and the preset name when the base is built offline."""
    if config.base_model in OFFLINE_PRESETS:
        directory = build_base_model_dir(
            config.base_model,
            work_dir / "base-model",
            seed=config.seed,
            extra_words=catalogue_texts(catalogue),
        )
        return directory, config.base_model
    return config.base_model, None


def load_base(source: Path | str, quantization: str | None) -> tuple[Any, Any]:
    from transformers import BitsAndBytesConfig, Blip2ForConditionalGeneration, Blip2Processor

    options: dict[str, Any] = {"dtype": _compute_dtype()}
    if quantization == "8bit":
        options["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        options["device_map"] = {"": 0}
    elif quantization == "4bit":
        options["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=_compute_dtype(), bnb_4bit_quant_type="nf4"
        )
        options["device_map"] = {"": 0}
    model = Blip2ForConditionalGeneration.from_pretrained(source, **options)
    processor = Blip2Processor.from_pretrained(source)
    return model, processor


def check_tokenizer_covers(processor: Any, rows: Sequence[dict[str, str]]) -> None:
    """Every answer must survive tokenize -> decode, or the model could never say it."""
    tokenizer = processor.tokenizer
    for answer in sorted({row["answer"] for row in rows}):
        decoded = tokenizer.decode(tokenizer(answer).input_ids, skip_special_tokens=True).strip()
        if decoded != answer:
            raise ValueError(
                f"the base model's tokenizer cannot spell the answer {answer!r} (got {decoded!r})"
            )


def add_lora(
    model: Any, config: TrainConfig, quantization: str | None, trainable_modules: Sequence[str]
) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantization:
        if trainable_modules:
            raise ValueError("--trainable-modules trains full weights, which a quantized base cannot hold")
        model = prepare_model_for_kbit_training(model)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=[name.strip() for name in config.lora_targets.split(",") if name.strip()],
        bias="none",
    )
    model = get_peft_model(model, lora)
    for name, parameter in model.named_parameters():
        if any(part in name for part in trainable_modules):
            parameter.requires_grad_(True)
    return model


def count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def evaluate_split(
    model: Any,
    processor: Any,
    items: Sequence[ImageQuestions],
    catalogue: Catalogue,
    device: torch.device,
    batch_size: int,
    max_new_tokens: int,
) -> dict[str, float]:
    """Loss and exact-match accuracy (after the catalogue's answer normalisation) on ``items``."""
    model.eval()
    losses: list[float] = []
    correct = total = 0
    for chunk in batches(items, batch_size):
        with torch.inference_mode():
            losses.append(float(question_answer_loss(model, encode_batch(processor, chunk, device))))
        answers = generate_answers(model, processor, chunk, device, max_new_tokens)
        rows = [row for item in chunk for row in item.rows]
        for row, answer in zip(rows, answers, strict=True):
            spec = attribute_spec(catalogue, row)
            correct += parse_answer(answer, spec).value == row["value"]
            total += 1
    return {"loss": sum(losses) / max(len(losses), 1), "accuracy": correct / max(total, 1)}


@dataclass
class TrainingData:
    """The rows and items of one run: what each epoch trains on and what it is validated on."""

    catalogue: Catalogue
    rows: list[dict[str, str]]  # training rows, extra pairs included (the model id's fingerprint)
    items: list[ImageQuestions]
    early_items: list[ImageQuestions]  # without the late attributes (the curriculum's first epochs)
    validation_dir: Path
    validation_rows: list[dict[str, str]]
    validation_items: list[ImageQuestions]


def load_training_data(config: TrainConfig) -> TrainingData:
    train_rows = read_qa_rows(config.train_dir / "vqa_train.csv")
    extra_rows = read_qa_rows(config.extra_pairs) if config.extra_pairs else []
    extra_dir = config.extra_pairs.parent if config.extra_pairs else config.train_dir
    validation_dir = config.validation_dir or config.train_dir
    validation_rows = read_qa_rows(validation_dir / "vqa_val.csv")
    late = {name.strip() for name in config.late_attributes.split(",") if name.strip()}
    early_rows = [row for row in train_rows if row["attribute"] not in late]
    early_extra = [row for row in extra_rows if row["attribute"] not in late]
    validation_items = group_by_image(validation_rows, validation_dir)
    if config.eval_products and config.eval_products < len(validation_items):
        # A seeded sample: the CSV is ordered by stratum, so its head would be one article type.
        validation_items = random.Random(config.seed).sample(validation_items, config.eval_products)
    data = TrainingData(
        catalogue=load_catalogue(config.train_dir / CATALOGUE_FILE),
        rows=train_rows + extra_rows,
        items=group_by_image(train_rows, config.train_dir) + group_by_image(extra_rows, extra_dir),
        early_items=group_by_image(early_rows, config.train_dir) + group_by_image(early_extra, extra_dir),
        validation_dir=validation_dir,
        validation_rows=validation_rows,
        validation_items=validation_items,
    )
    if not data.items or not data.validation_items:
        raise ValueError("no training or validation rows: run `describer dataset prepare` first")
    return data


def train(config: TrainConfig) -> Path:
    """Fine-tune, keep the best epoch, merge LoRA, write the model dir, calibrate. Returns the model dir."""
    console = Console(stderr=True)
    generator = _seed_everything(config.seed)
    data = load_training_data(config)
    quantization = _use_quantization(config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="describer-train-") as work:
        source, preset = resolve_base_model(config, data.catalogue, Path(work))
        model, processor = load_base(source, quantization)
        check_tokenizer_covers(processor, data.rows + data.validation_rows)
        modules = config.trainable_modules
        if modules is None:
            modules = PRESET_TRAINABLE_MODULES if preset else ""
        trainable_modules = [part for part in modules.split(",") if part.strip() and part != "none"]
        model = add_lora(model, config, quantization, trainable_modules)
        if not quantization:
            model.to(device)
        parameters = count_parameters(model)
        console.print(
            f"trainable parameters: {parameters[0]:,} of {parameters[1]:,} "
            f"({100 * parameters[0] / parameters[1]:.2f} %)"
        )
        best = fit(model, processor, data, config, device, generator, console)
        merged = merge_lora(model, source, quantization)
        model_dir = save_model_dir(merged, processor, data, config, preset, best, parameters)
    calibration = calibrate_model_dir(model_dir, data.validation_dir, progress=config.progress)
    console.print(
        f"confidence temperature {calibration.temperature:.3f} (validation NLL "
        f"{calibration.nll_before:.3f} -> {calibration.nll_after:.3f})"
    )
    return model_dir


def fit(
    model: Any,
    processor: Any,
    data: TrainingData,
    config: TrainConfig,
    device: torch.device,
    generator: torch.Generator,
    console: Console,
) -> dict[str, Any]:
    """Every epoch, validated; the best epoch's weights are loaded back into ``model``. Returns its record."""
    from transformers import get_cosine_schedule_with_warmup

    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)

    def epoch_items(epoch: int) -> list[ImageQuestions]:
        return data.early_items if epoch <= config.late_after_epochs else data.items

    total_steps = sum(
        math.ceil(len(epoch_items(epoch)) / config.batch_size / config.gradient_accumulation)
        for epoch in range(1, config.epochs + 1)
    )
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, round(config.warmup_ratio * total_steps), total_steps
    )

    best: dict[str, Any] | None = None
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        running, seen = 0.0, 0
        progress = tqdm(
            list(batches(epoch_items(epoch), config.batch_size, generator)),
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            disable=not config.progress,
        )
        for step, chunk in enumerate(progress, start=1):
            loss = question_answer_loss(model, encode_batch(processor, chunk, device))
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss.item()} at epoch {epoch}, step {step}: no model was saved; "
                    f"lower --learning-rate (now {config.learning_rate}) or --max-grad-norm"
                )
            (loss / config.gradient_accumulation).backward()
            if step % config.gradient_accumulation == 0 or step == len(progress):
                torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            running += loss.item()
            seen += 1
            progress.set_postfix(loss=f"{running / seen:.3f}")
        metrics = evaluate_split(
            model,
            processor,
            data.validation_items,
            data.catalogue,
            device,
            config.batch_size,
            config.max_new_tokens,
        )
        record = {
            "epoch": epoch,
            "train_loss": running / max(seen, 1),
            "val_loss": metrics["loss"],
            "val_accuracy": metrics["accuracy"],
            "seconds": time.perf_counter() - started,
        }
        config.history.append(record)
        console.print(
            f"epoch {epoch}: train loss {record['train_loss']:.4f}  val loss {record['val_loss']:.4f}  "
            f"val exact match {record['val_accuracy']:.3f}"
        )
        if not math.isfinite(metrics["loss"]):
            raise TrainingDiverged(
                f"validation loss became {metrics['loss']} at epoch {epoch}: no model saved"
            )
        if best is None or (record["val_accuracy"], -record["val_loss"]) > (
            best["val_accuracy"],
            -best["val_loss"],
        ):
            state = {
                name: p.detach().to("cpu", copy=True)
                for name, p in model.named_parameters()
                if p.requires_grad
            }
            best = {**record, "state": state}

    assert best is not None
    with torch.no_grad():
        named = dict(model.named_parameters())
        for name, value in best["state"].items():
            named[name].copy_(value)
    return {key: value for key, value in best.items() if key != "state"}


def save_model_dir(
    merged: Any,
    processor: Any,
    data: TrainingData,
    config: TrainConfig,
    preset: str | None,
    best: dict[str, Any],
    parameters: tuple[int, int],
) -> Path:
    """The training metrics to the output dir, the merged model and its metadata to the model dir."""
    trainable, total = parameters
    metrics_out = {
        "best_epoch": best,
        "history": config.history,
        "trainable_parameters": trainable,
        "total_parameters": total,
    }
    (config.output_dir / "training_metrics.json").write_text(json.dumps(metrics_out, indent=2) + "\n")
    metadata = ModelMetadata(
        model_id=config.model_id or f"describer-{_fingerprint(config, data.rows)}",
        base_model=config.base_model,
        preset=preset,
        seed=config.seed,
        hyperparameters=config.hyperparameters(),
        metrics={"validation": best, "trainable_parameters": trainable, "total_parameters": total},
    )
    merged = merged.to(torch.float32) if not torch.cuda.is_available() else merged
    return write_model_dir(merged, processor, data.catalogue, metadata, config.model_dir)


def merge_lora(model: Any, source: Path | str, quantization: str | None) -> Any:
    """Fold the LoRA weights into the base weights; a quantized base is reloaded in bf16 to merge."""
    if not quantization:
        return model.merge_and_unload()
    from peft import PeftModel
    from transformers import Blip2ForConditionalGeneration

    with tempfile.TemporaryDirectory(prefix="describer-adapter-") as adapter_dir:
        model.save_pretrained(adapter_dir)
        base = Blip2ForConditionalGeneration.from_pretrained(source, dtype=_compute_dtype())
        return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()


def _fingerprint(config: TrainConfig, rows: Sequence[dict[str, str]]) -> str:
    digest = hashlib.sha256(json.dumps(config.hyperparameters(), sort_keys=True, default=str).encode())
    for row in rows:
        digest.update(f"{row['id']}|{row['question']}|{row['answer']}\n".encode())
    return digest.hexdigest()[:12]


def print_history(history: Sequence[dict[str, float]]) -> None:
    table = Table(title="training")
    for column in ("epoch", "train loss", "val loss", "val exact match", "seconds"):
        table.add_column(column, justify="right")
    for record in history:
        table.add_row(
            str(record["epoch"]),
            f"{record['train_loss']:.4f}",
            f"{record['val_loss']:.4f}",
            f"{record['val_accuracy']:.3f}",
            f"{record['seconds']:.0f}",
        )
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    model_dir = train(config)
    print_history(config.history)
    print(f"model written to {model_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
