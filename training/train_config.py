"""Training arguments: SageMaker conventions (``--name value`` hyperparameters, ``SM_*`` paths).

Kept free of torch/transformers imports so the ``describer`` CLI starts fast.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

from describer_rules.answers import MAX_ANSWER_TOKENS

# Bases built offline by training.tiny (no hub); anything else is a hub id or a local model dir.
OFFLINE_PRESETS = ("tiny", "proportional")
# The reference recipe's LoRA: rank 8, alpha 32, dropout 0.05 on the T5 attention's q and v.
DEFAULT_LORA_TARGETS = "q,v"
# A randomly initialised tiny BLIP-2 has nothing pretrained for LoRA to adapt, so the offline presets
# train every module fully besides the (still merged) LoRA adapters; see docs/training.md.
PRESET_TRAINABLE_MODULES = "vision_model,qformer,query_tokens,language_projection,language_model"


def _arg(default: Any = None, help: str | None = None, **extra: Any) -> Any:
    """A field and its command-line argument in one declaration: ``help``, and optionally ``env`` (the
    SageMaker variable that supplies it), ``required`` (unless that variable is set), ``choices``,
    ``metavar`` or ``flag`` (a store_false switch)."""
    metadata = {"help": help, **extra}
    if isinstance(default, list):
        return field(default_factory=list, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Every training argument, declared once: ``add_train_arguments`` derives the command line from it."""

    train_dir: Path = _arg(None, "the prepared training split", env="SM_CHANNEL_TRAIN", required=True)
    model_dir: Path = _arg(Path("model"), "where the merged model dir is written", env="SM_MODEL_DIR")
    output_dir: Path = _arg(Path("output"), "training metrics", env="SM_OUTPUT_DATA_DIR")
    validation_dir: Path | None = _arg(
        None, "the validation split (default: --train-dir)", env="SM_CHANNEL_VALIDATION"
    )
    extra_pairs: Path | None = _arg(
        None,
        "more training Q/A pairs in the prepared format (e.g. `describer corrections export`'s "
        "corrections.csv), images relative to the CSV's folder",
        metavar="CSV",
    )
    base_model: str = _arg("tiny", f"hub id, local dir, or a preset: {', '.join(OFFLINE_PRESETS)}")
    epochs: int = _arg(10)
    batch_size: int = _arg(8, "images per step (all their questions)")
    gradient_accumulation: int = _arg(1)
    learning_rate: float = _arg(1e-4)
    warmup_ratio: float = _arg(0.1)
    weight_decay: float = _arg(0.01)
    max_grad_norm: float = _arg(1.0)
    lora_r: int = _arg(8)
    lora_alpha: int = _arg(32)
    lora_dropout: float = _arg(0.05)
    lora_targets: str = _arg(DEFAULT_LORA_TARGETS, "comma-separated module names")
    trainable_modules: str | None = _arg(
        None,
        "comma-separated module name parts trained fully besides LoRA "
        f"(default: none for hub models, {PRESET_TRAINABLE_MODULES} for presets; 'none' for none)",
    )
    quantization: str = _arg(
        "auto",
        "auto: 8-bit on CUDA, none on CPU (bitsandbytes needs CUDA)",
        choices=("auto", "none", "8bit", "4bit"),
    )
    seed: int = _arg(0)
    max_new_tokens: int = _arg(MAX_ANSWER_TOKENS)
    eval_products: int = _arg(0, "cap on validation products per epoch (0: all)")
    late_attributes: str = _arg(
        "",
        "comma-separated attributes left out of the first --late-after-epochs epochs: a curriculum for "
        "models trained from scratch, where easy global attributes (Colour, Fit) learned first keep the "
        "encoder from learning the shape ones",
    )
    late_after_epochs: int = _arg(0)
    model_id: str | None = _arg(None, "name written into describer_model.json")
    progress: bool = _arg(True, "no progress bars", flag="--no-progress")
    # Filled by training, one entry per epoch; not an argument.
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
    parser = argparse.ArgumentParser(description="Fine-tune BLIP-2 with LoRA on prepared Q/A pairs")
    add_train_arguments(parser, env)
    return config_from_args(parser.parse_args(argv))


def add_train_arguments(parser: argparse.ArgumentParser, env: dict[str, str] | None = None) -> None:
    """One ``--name`` per TrainConfig field, typed from its annotation; a SageMaker variable, where the
    field names one, is its default (and makes a required field optional)."""
    env = dict(os.environ if env is None else env)
    hints = get_type_hints(TrainConfig)
    for spec in fields(TrainConfig):
        if "help" not in spec.metadata:
            continue
        meta = spec.metadata
        if "flag" in meta:
            parser.add_argument(meta["flag"], dest=spec.name, action="store_false", help=meta["help"])
            continue
        kind = next((t for t in get_args(hints[spec.name]) if t is not type(None)), hints[spec.name])
        default = spec.default
        if meta.get("env") in env:
            default = kind(env[meta["env"]])
        options: dict[str, Any] = {"type": kind, "default": default, "help": meta["help"]}
        options.update({key: meta[key] for key in ("choices", "metavar") if key in meta})
        if meta.get("required") and default is None:
            options["required"] = True
        parser.add_argument("--" + spec.name.replace("_", "-"), **options)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {spec.name for spec in fields(TrainConfig)} - {"history"}
    return TrainConfig(**{name: getattr(args, name) for name in names if hasattr(args, name)})
