"""The demo model: synthetic catalogue -> prepared data -> tiny BLIP-2 fine-tune, cached by its inputs.

``make demo-model`` runs this. The model dir lands at a stable path (``.cache/demo-model``) that the
local stack and the integration tests use; the prepared data beside it (``.cache/demo-data``) is what
``make eval`` evaluates on.

The weights are shipped in the repository (``training/demo_model/``: weights, processor, catalogue,
metadata; ~2 MB), trained by this recipe with ``--retrain --ship``, because the recipe takes longer
than the 3 minutes a fresh ``make demo`` may spend. By default the synthetic data is regenerated
(deterministic, seeded) and the model dir assembled from the shipped weights by ``write_model_dir``
(which adds ``code/`` fresh from the source tree) and its confidence temperature fitted on the
validation split by ``calibrate_model_dir``, as training does. A key (sha256 of every input: the
recipe below, the training and endpoint code and the packaged catalogue) is stored next to the
model; the same key means nothing is rebuilt, and only the endpoint code inside ``code/`` is refreshed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import describer_rules
from describer_rules.catalogue import DEFAULT_CATALOGUE_PATH, load_catalogue
from training.dataset import prepare_dataset
from training.model_dir import (
    CATALOGUE_FILE,
    CODE_DIR,
    ENDPOINT_PACKAGE,
    ModelMetadata,
    read_metadata,
    write_code_dir,
    write_model_dir,
)
from training.served_answers import calibrate_model_dir
from training.synth import demo_catalogue, write_synthetic_catalogue
from training.train import parse_args, print_history, train

# The recipe. Changing any value (or the code below) changes the key and retrains.
DEMO_PRODUCTS = 4000
DEMO_SEED = 0
# 60 / 20 / 20: about 130 held-out products per category, so that a per-attribute ECE means something.
DEMO_HELD_OUT_FRACTION = 0.2
DEMO_TRAIN_ARGS = (
    "--base-model", "tiny",
    "--epochs", "40",
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
SHIPPED_MODEL_DIR = Path(__file__).with_name("demo_model")
TRAINING_CODE = (
    "synth.py",
    "dataset.py",
    "tiny.py",
    "modeling.py",
    "train.py",
    "model_dir.py",
    "demo_model_build.py",
    # The confidence temperature is fitted with the endpoint's own scoring.
    "calibration.py",
    "served_answers.py",
)
ENDPOINT_CODE = ("model.py", "scoring.py", "generation.py")
KEY_FILE_SUFFIX = ".key"


def demo_key() -> str:
    digest = hashlib.sha256()
    recipe = {
        "products": DEMO_PRODUCTS,
        "seed": DEMO_SEED,
        "held_out": DEMO_HELD_OUT_FRACTION,
        "train": DEMO_TRAIN_ARGS,
    }
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    package = Path(__file__).parent
    for name in TRAINING_CODE:
        digest.update((package / name).read_bytes())
    for name in ENDPOINT_CODE:
        digest.update((ENDPOINT_PACKAGE / name).read_bytes())
    core = Path(describer_rules.__file__).parent
    for name in ("catalogue.py", "answers.py", "confidence.py"):
        digest.update((core / name).read_bytes())
    digest.update(DEFAULT_CATALOGUE_PATH.read_bytes())
    return digest.hexdigest()[:16]


def prepare_demo_data(data_dir: Path) -> None:
    """Synthesise the demo catalogue and prepare it (seeded: the same products and split every time)."""
    kaggle_dir = data_dir.with_name(data_dir.name + "-kaggle")
    for directory in (kaggle_dir, data_dir):
        shutil.rmtree(directory, ignore_errors=True)
    catalogue = demo_catalogue(load_catalogue())
    write_synthetic_catalogue(kaggle_dir, DEMO_PRODUCTS, seed=DEMO_SEED, catalogue=catalogue)
    # Trained on the packaged catalogue's demo subset (what the renderer draws): the pipeline asks
    # the packaged catalogue's questions, and every question the demo model learned is one of them.
    prepare_dataset(
        kaggle_dir,
        data_dir,
        seed=DEMO_SEED,
        catalogue=catalogue,
        val_fraction=DEMO_HELD_OUT_FRACTION,
        test_fraction=DEMO_HELD_OUT_FRACTION,
    )


def train_demo_model(model_dir: Path, data_dir: Path, key: str) -> None:
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


def ship_demo_model(model_dir: Path, shipped_dir: Path = SHIPPED_MODEL_DIR) -> None:
    """Copy a trained model dir into the repository, without ``code/`` (assembly adds it fresh)."""
    shutil.rmtree(shipped_dir, ignore_errors=True)
    shutil.copytree(model_dir, shipped_dir, ignore=shutil.ignore_patterns(CODE_DIR))


def assemble_shipped_model(model_dir: Path, shipped_dir: Path = SHIPPED_MODEL_DIR) -> ModelMetadata:
    """Write a complete model dir from the shipped weights: the same ``write_model_dir`` as training."""
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    model = Blip2ForConditionalGeneration.from_pretrained(shipped_dir)
    processor = Blip2Processor.from_pretrained(shipped_dir)
    catalogue = load_catalogue(shipped_dir / CATALOGUE_FILE)
    metadata = read_metadata(shipped_dir)
    write_model_dir(model, processor, catalogue, metadata, model_dir)
    return metadata


def build_demo_model(
    model_dir: Path, data_dir: Path, *, force: bool = False, retrain: bool = False, ship: bool = False
) -> Path:
    key = demo_key()
    key_file = model_dir.with_name(model_dir.name + KEY_FILE_SUFFIX)
    current = key_file.read_text().strip() if key_file.is_file() else None
    if not (force or retrain) and current == key and model_dir.is_dir():
        write_code_dir(model_dir)  # the endpoint code may have changed without the key
        print(f"demo model {key} is up to date: {model_dir}")
        return model_dir
    started = time.perf_counter()
    prepare_demo_data(data_dir)
    if retrain:
        train_demo_model(model_dir, data_dir, key)
        if ship:
            ship_demo_model(model_dir)
            print(f"shipped to {SHIPPED_MODEL_DIR}: commit it")
    else:
        metadata = assemble_shipped_model(model_dir)
        if metadata.model_id != f"describer-demo-{key}":
            print(
                f"note: the shipped {metadata.model_id} was trained by an earlier recipe or training code "
                f"(now {key}); `python -m training.demo_model_build --retrain --ship` retrains it"
            )
        # Training fits the temperature itself; the shipped weights get theirs the same way here.
        calibration = calibrate_model_dir(model_dir, data_dir)
        print(
            f"confidence temperature {calibration.temperature:.3f}, fitted on the {calibration.split} split"
        )
    key_file.write_text(key + "\n")
    print(f"demo model written to {model_dir} in {time.perf_counter() - started:.0f} s")
    return model_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(".cache/demo-model"))
    parser.add_argument("--data", type=Path, default=Path(".cache/demo-data"))
    parser.add_argument("--force", action="store_true", help="rebuild even when the key matches")
    parser.add_argument(
        "--retrain", action="store_true", help="train from scratch instead of the shipped weights"
    )
    parser.add_argument(
        "--ship", action="store_true", help=f"with --retrain: copy the result to {SHIPPED_MODEL_DIR}"
    )
    args = parser.parse_args(argv)
    if args.ship and not args.retrain:
        parser.error("--ship needs --retrain")
    build_demo_model(args.out, args.data, force=args.force, retrain=args.retrain, ship=args.ship)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
