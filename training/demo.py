"""The demo model: synthetic catalogue -> prepared data -> tiny BLIP-2 fine-tune, cached by its inputs.

``make demo-model`` runs this. The model dir lands at a stable path (``.cache/demo-model``) that the
local stack and the integration tests use; the prepared data beside it (``.cache/demo-data``) is what
``make eval`` evaluates on. A key (sha256 of every input: the recipe below, the training code and
the packaged catalogue) is stored next to the model; the same key means nothing is retrained, and only
the endpoint code inside ``code/`` is refreshed (so serving-code edits never cost a retrain).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import describer_core
from describer_core.catalogue import DEFAULT_CATALOGUE_PATH, load_catalogue
from training.model_dir import SERVING_CODE
from training.prepare import prepare_dataset
from training.synth import write_synthetic_catalogue
from training.train import parse_args, print_history, train

# The recipe. Changing any value (or the code below) changes the key and retrains.
DEMO_PRODUCTS = 1200
DEMO_SEED = 0
DEMO_TRAIN_ARGS = (
    "--base-model", "tiny",
    "--epochs", "16",
    "--batch-size", "16",
    "--learning-rate", "1e-3",
    "--warmup-ratio", "0.05",
    # No LoRA dropout for the tiny model: its adapters sit on a language model trained fully anyway,
    # and dropout's random masks cost a quarter of the CPU time (the reference's 0.05 stays the default).
    "--lora-dropout", "0",
    # Curriculum: learned first, the global attributes (colour, width, grain) keep the from-scratch
    # encoder from learning sleeves, necklines and plackets; they join after 8 epochs.
    "--late-attributes", "Colour,Fit,Fabric",
    "--late-after-epochs", "8",
    "--eval-products", "60",
)  # fmt: skip
TRAINING_CODE = ("synth.py", "prepare.py", "tiny.py", "modeling.py", "train.py", "model_dir.py", "demo.py")
KEY_FILE_SUFFIX = ".key"


def demo_key() -> str:
    digest = hashlib.sha256()
    recipe = {"products": DEMO_PRODUCTS, "seed": DEMO_SEED, "train": DEMO_TRAIN_ARGS}
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    package = Path(__file__).parent
    for name in TRAINING_CODE:
        digest.update((package / name).read_bytes())
    core = Path(describer_core.__file__).parent
    for name in ("catalogue.py", "answers.py"):
        digest.update((core / name).read_bytes())
    digest.update(DEFAULT_CATALOGUE_PATH.read_bytes())
    return digest.hexdigest()[:16]


def refresh_serving_code(model_dir: Path) -> None:
    """Bring ``code/`` up to date with the endpoint code without retraining."""
    code = model_dir / "code"
    shutil.copyfile(SERVING_CODE, code / "inference.py")
    shutil.rmtree(code / "describer_core")
    shutil.copytree(
        Path(describer_core.__file__).parent,
        code / "describer_core",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )


def build_demo_model(model_dir: Path, data_dir: Path, force: bool = False) -> Path:
    key = demo_key()
    key_file = model_dir.with_name(model_dir.name + KEY_FILE_SUFFIX)
    if not force and key_file.is_file() and key_file.read_text().strip() == key and model_dir.is_dir():
        refresh_serving_code(model_dir)
        print(f"demo model {key} is up to date: {model_dir}")
        return model_dir
    started = time.perf_counter()
    kaggle_dir = data_dir.with_name(data_dir.name + "-kaggle")
    for directory in (kaggle_dir, data_dir):
        shutil.rmtree(directory, ignore_errors=True)
    write_synthetic_catalogue(kaggle_dir, DEMO_PRODUCTS, seed=DEMO_SEED)
    # Trained on the packaged catalogue, so the pipeline asks exactly what the model learned.
    prepare_dataset(kaggle_dir, data_dir, seed=DEMO_SEED, catalogue=load_catalogue())
    config = parse_args(
        [
            "--train-dir", str(data_dir),
            "--model-dir", str(model_dir),
            "--output-dir", str(data_dir / "training-output"),
            "--model-id", f"describer-demo-{key}",
            "--seed", str(DEMO_SEED),
            *DEMO_TRAIN_ARGS,
        ],
        env={},
    )  # fmt: skip
    train(config)
    print_history(config.history)
    key_file.write_text(key + "\n")
    print(f"demo model {key} written to {model_dir} in {time.perf_counter() - started:.0f} s")
    return model_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(".cache/demo-model"))
    parser.add_argument("--data", type=Path, default=Path(".cache/demo-data"))
    parser.add_argument("--force", action="store_true", help="retrain even when the key matches")
    args = parser.parse_args(argv)
    build_demo_model(args.out, args.data, force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
