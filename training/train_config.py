"""Training arguments: SageMaker conventions (``--name value`` hyperparameters, ``SM_*`` paths).

Kept free of torch/transformers imports so the ``describer`` CLI starts fast.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from describer_rules.answers import MAX_ANSWER_TOKENS

# Bases built offline by training.tiny (no hub); anything else is a hub id or a local model dir.
OFFLINE_PRESETS = ("tiny", "proportional")
# The reference recipe's LoRA: rank 8, alpha 32, dropout 0.05 on the T5 attention's q and v.
DEFAULT_LORA_TARGETS = "q,v"
# A randomly initialised tiny BLIP-2 has nothing pretrained for LoRA to adapt, so the offline presets
# train every module fully besides the (still merged) LoRA adapters; see docs/training.md.
PRESET_TRAINABLE_MODULES = "vision_model,qformer,query_tokens,language_projection,language_model"


@dataclass
class TrainConfig:
    train_dir: Path
    model_dir: Path
    output_dir: Path
    validation_dir: Path | None = None
    # Q/A pairs added to the training rows, e.g. reviewers' corrections (describer corrections export):
    # a CSV in the prepared format, its images relative to the CSV's folder.
    extra_pairs: Path | None = None
    base_model: str = "tiny"
    epochs: int = 10
    batch_size: int = 8
    gradient_accumulation: int = 1
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = DEFAULT_LORA_TARGETS
    trainable_modules: str | None = None
    quantization: str = "auto"
    seed: int = 0
    max_new_tokens: int = MAX_ANSWER_TOKENS
    eval_products: int = 0
    late_attributes: str = ""
    late_after_epochs: int = 0
    model_id: str | None = None
    progress: bool = True
    history: list[dict[str, float]] = field(default_factory=list)

    def hyperparameters(self) -> dict[str, Any]:
        skip = {
            "train_dir",
            "model_dir",
            "output_dir",
            "validation_dir",
            "extra_pairs",
            "progress",
            "history",
            "model_id",
        }
        return {key: value for key, value in asdict(self).items() if key not in skip}


def parse_args(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> TrainConfig:
    env = dict(os.environ if env is None else env)
    parser = argparse.ArgumentParser(description="Fine-tune BLIP-2 with LoRA on prepared Q/A pairs")
    add_train_arguments(parser, env)
    return config_from_args(parser.parse_args(argv))


def add_train_arguments(parser: argparse.ArgumentParser, env: dict[str, str] | None = None) -> None:
    env = dict(os.environ if env is None else env)
    defaults = TrainConfig(train_dir=Path(), model_dir=Path(), output_dir=Path())
    parser.add_argument(
        "--train-dir", type=Path, default=env.get("SM_CHANNEL_TRAIN"), required="SM_CHANNEL_TRAIN" not in env
    )
    parser.add_argument("--validation-dir", type=Path, default=env.get("SM_CHANNEL_VALIDATION"))
    parser.add_argument(
        "--extra-pairs",
        type=Path,
        default=None,
        metavar="CSV",
        help="more training Q/A pairs in the prepared format (e.g. `describer corrections export`'s "
        "corrections.csv), images relative to the CSV's folder",
    )
    parser.add_argument("--model-dir", type=Path, default=Path(env.get("SM_MODEL_DIR", "model")))
    parser.add_argument("--output-dir", type=Path, default=Path(env.get("SM_OUTPUT_DATA_DIR", "output")))
    parser.add_argument(
        "--base-model",
        default=defaults.base_model,
        help=f"hub id, local dir, or a preset: {', '.join(OFFLINE_PRESETS)}",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="images per step (all their questions)"
    )
    parser.add_argument("--gradient-accumulation", type=int, default=defaults.gradient_accumulation)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--warmup-ratio", type=float, default=defaults.warmup_ratio)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--max-grad-norm", type=float, default=defaults.max_grad_norm)
    parser.add_argument("--lora-r", type=int, default=defaults.lora_r)
    parser.add_argument("--lora-alpha", type=int, default=defaults.lora_alpha)
    parser.add_argument("--lora-dropout", type=float, default=defaults.lora_dropout)
    parser.add_argument("--lora-targets", default=defaults.lora_targets, help="comma-separated module names")
    parser.add_argument(
        "--trainable-modules",
        default=None,
        help="comma-separated module name parts trained fully besides LoRA "
        f"(default: none for hub models, {PRESET_TRAINABLE_MODULES} for presets; 'none' for none)",
    )
    parser.add_argument(
        "--quantization",
        choices=("auto", "none", "8bit", "4bit"),
        default=defaults.quantization,
        help="auto: 8-bit on CUDA, none on CPU (bitsandbytes needs CUDA)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument(
        "--eval-products", type=int, default=0, help="cap on validation products per epoch (0: all)"
    )
    parser.add_argument(
        "--late-attributes",
        default="",
        help="comma-separated attributes left out of the first --late-after-epochs epochs: a curriculum "
        "for models trained from scratch, where easy global attributes (Colour, Fit) learned first keep "
        "the encoder from learning the shape ones",
    )
    parser.add_argument("--late-after-epochs", type=int, default=0)
    parser.add_argument("--model-id", default=None, help="name written into describer_model.json")
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = set(TrainConfig.__dataclass_fields__) - {"history"}
    return TrainConfig(**{name: getattr(args, name) for name in names if hasattr(args, name)})
