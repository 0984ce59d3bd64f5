"""The offline builders: tokenizer round-trips, presets, base model dirs that load without the hub."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import Blip2ForConditionalGeneration, Blip2Processor

from describer_rules.catalogue import load_catalogue
from training.tiny import (
    IMAGE_TOKEN,
    blip2_config,
    build_base_model_dir,
    build_tokenizer,
    catalogue_texts,
    image_token_id,
)


def test_tokenizer_round_trips_every_catalogue_question_and_answer() -> None:
    tokenizer = build_tokenizer()
    for text in catalogue_texts(load_catalogue()):
        ids = tokenizer(text).input_ids
        assert tokenizer.unk_token_id not in ids
        assert ids[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_learns_extra_words_and_keeps_t5_special_ids() -> None:
    tokenizer = build_tokenizer(["Fabric: Bamboo-Linen", "What is the hem of the kurta in this picture?"])
    assert tokenizer.convert_tokens_to_ids(["<pad>", "</s>", "<unk>"]) == [0, 1, 2]
    for text in ["Fabric: Bamboo-Linen", "What is the hem of the kurta in this picture?"]:
        assert tokenizer.decode(tokenizer(text).input_ids, skip_special_tokens=True) == text
    assert tokenizer.unk_token_id in build_tokenizer()("Bamboo").input_ids


def test_presets_keep_blip2_structure() -> None:
    real = blip2_config("blip2-flan-t5-xl")
    proportional = blip2_config("proportional")
    assert (real.vision_config.image_size, real.vision_config.patch_size) == (224, 14)
    assert (proportional.vision_config.image_size, proportional.vision_config.patch_size) == (224, 14)
    assert real.num_query_tokens == proportional.num_query_tokens == 32
    assert proportional.vision_config.hidden_size * 4 == real.vision_config.hidden_size
    assert proportional.text_config.d_model * 4 == real.text_config.d_model
    with pytest.raises(ValueError, match="unknown preset"):
        blip2_config("huge")


def test_full_config_on_meta_device_has_the_published_size() -> None:
    with torch.device("meta"):
        model = Blip2ForConditionalGeneration(blip2_config("blip2-flan-t5-xl"))
    total = sum(parameter.numel() for parameter in model.parameters())
    assert 3.85e9 < total < 3.90e9


def test_base_model_dir_loads_without_the_hub_and_generates(tmp_path: Path) -> None:
    model_dir = build_base_model_dir("tiny", tmp_path / "base", seed=3)
    model = Blip2ForConditionalGeneration.from_pretrained(model_dir)
    processor = Blip2Processor.from_pretrained(model_dir)
    assert model.config.image_token_index == image_token_id(processor.tokenizer)
    inputs = processor(
        images=Image.new("RGB", (90, 120), "red"),
        text="What is the pattern of the shirt in this picture?",
        return_tensors="pt",
    )
    image_tokens = (inputs["input_ids"] == processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)).sum()
    assert int(image_tokens) == model.config.num_query_tokens
    assert inputs["pixel_values"].shape[-1] == model.config.vision_config.image_size
    generated = model.generate(**inputs, max_new_tokens=4)
    assert generated.shape[0] == 1
