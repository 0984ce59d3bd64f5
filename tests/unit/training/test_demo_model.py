"""The shipped demo model: a trained model dir goes into the repository without code/ and comes back
out as a complete model dir (weights unchanged, endpoint code added fresh)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import Blip2ForConditionalGeneration, Blip2Processor

from describer_rules.catalogue import load_catalogue
from training.demo_model_build import SHIPPED_MODEL_DIR, assemble_shipped_model, ship_demo_model
from training.model_dir import METADATA_FILE, ModelMetadata, read_metadata, write_model_dir
from training.tiny import build_base_model_dir


def _trained_model_dir(root: Path) -> Path:
    base = build_base_model_dir("tiny", root / "base", seed=3)
    model = Blip2ForConditionalGeneration.from_pretrained(base)
    metadata = ModelMetadata(model_id="describer-demo-test", base_model="tiny", preset="tiny", seed=3)
    return write_model_dir(
        model, Blip2Processor.from_pretrained(base), load_catalogue(), metadata, root / "trained"
    )


def test_shipped_model_round_trips_into_a_complete_model_dir(tmp_path: Path) -> None:
    trained = _trained_model_dir(tmp_path)
    shipped = tmp_path / "shipped"
    ship_demo_model(trained, shipped)
    assert not (shipped / "code").exists()
    assert (shipped / METADATA_FILE).is_file()

    assembled = tmp_path / "assembled"
    metadata = assemble_shipped_model(assembled, shipped)
    assert metadata.model_id == "describer-demo-test" == read_metadata(assembled).model_id
    assert (assembled / "code" / "inference.py").is_file()
    assert (assembled / "code" / "describer_rules" / "answers.py").is_file()
    before = Blip2ForConditionalGeneration.from_pretrained(trained).state_dict()
    after = Blip2ForConditionalGeneration.from_pretrained(assembled).state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_the_repository_ships_a_demo_model_without_endpoint_code() -> None:
    assert (SHIPPED_MODEL_DIR / "model.safetensors").is_file()
    assert not (SHIPPED_MODEL_DIR / "code").exists()
    assert read_metadata(SHIPPED_MODEL_DIR).model_id.startswith("describer-demo-")
