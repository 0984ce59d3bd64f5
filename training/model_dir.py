"""The model directory contract shared by training, the SageMaker endpoint and the local model host.

Layout (everything at the root loads with no hub access)::

    config.json, model.safetensors, ...   merged Blip2ForConditionalGeneration (save_pretrained)
    processor_config.json, tokenizer*, ... Blip2Processor (save_pretrained)
    catalogue.json                         the catalogue the model was trained with
    describer_model.json                   ModelMetadata: model_id, base, hyperparameters, metrics,
                                           calibration (the endpoint's confidence temperature)
    code/inference.py                      the endpoint's entry point (endpoint/inference.py)
    code/endpoint/                         the endpoint package it imports (endpoint/)
    code/requirements.txt                  what the inference container adds (endpoint/requirements.txt)
    code/describer_rules/                   the shared domain rules (same answer parsing)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

import describer_rules
import endpoint
from describer_rules.catalogue import Catalogue
from describer_rules.confidence import Calibration
from describer_rules.model_files import CATALOGUE_FILE, METADATA_FILE

ENDPOINT_PACKAGE = Path(endpoint.__file__).parent
ENTRY_POINT = ENDPOINT_PACKAGE / "inference.py"
# The Hugging Face inference container brings torch; these are what the handler needs on top.
ENDPOINT_REQUIREMENTS = ENDPOINT_PACKAGE / "requirements.txt"
CODE_DIR = "code"
_NO_BYTECODE = shutil.ignore_patterns("__pycache__", "*.pyc")


class ModelMetadata(BaseModel):
    model_id: str = Field(description="Stable name of this model, e.g. describer-demo-<hash>")
    base_model: str = Field(description="Hub id, local dir or preset the fine-tune started from")
    preset: str | None = Field(default=None, description="The offline preset when the base was built locally")
    seed: int = 0
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    calibration: Calibration | None = Field(
        default=None, description="The confidence temperature the endpoint applies (training.calibration)"
    )


def write_model_dir(
    model: Any, processor: Any, catalogue: Catalogue, metadata: ModelMetadata, out_dir: Path
) -> Path:
    """Write a self-contained model directory; ``model`` must already have its LoRA merged.

    Written to a sibling temporary directory and renamed into place, so ``out_dir`` is either the
    previous complete model or the new complete one, never half of each.
    """
    if not ENTRY_POINT.is_file():
        raise FileNotFoundError(f"the endpoint handler {ENTRY_POINT} is missing; a model dir needs it")
    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    (staging / CATALOGUE_FILE).write_text(catalogue.to_json(), encoding="utf-8")
    (staging / METADATA_FILE).write_text(metadata.model_dump_json(indent=2) + "\n", encoding="utf-8")
    write_code_dir(staging)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return out_dir


def write_code_dir(model_dir: Path) -> Path:
    """(Re)write ``<model_dir>/code``: the entry point, the endpoint package, its requirements and
    ``describer_rules``."""
    code = Path(model_dir) / CODE_DIR
    shutil.rmtree(code, ignore_errors=True)
    code.mkdir()
    shutil.copyfile(ENTRY_POINT, code / ENTRY_POINT.name)
    shutil.copyfile(ENDPOINT_REQUIREMENTS, code / ENDPOINT_REQUIREMENTS.name)
    copy_shared_packages(code)
    return code


def copy_shared_packages(target_dir: Path) -> None:
    """Copy ``endpoint`` and ``describer_rules`` (without bytecode) into ``target_dir``: what a model
    dir's ``code/`` and the training job both import besides their own code."""
    for package in (ENDPOINT_PACKAGE, Path(describer_rules.__file__).parent):
        shutil.copytree(package, Path(target_dir) / package.name, ignore=_NO_BYTECODE)


def read_metadata(model_dir: Path) -> ModelMetadata:
    text = (Path(model_dir) / METADATA_FILE).read_text(encoding="utf-8")
    return ModelMetadata.model_validate(json.loads(text))
