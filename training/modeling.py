"""BLIP-2 question answering as training and evaluation use it: one vision pass per image.

A product has several questions about one picture. The image goes through the vision encoder,
Q-Former and projection once; its query features are put in front of each question's token
embeddings, exactly the layout ``Blip2Processor`` + ``Blip2ForConditionalGeneration`` produce (the
image placeholder tokens replaced by the features) and the endpoint uses.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from describer_rules.answers import MAX_ANSWER_TOKENS
from endpoint.generation import greedy_decode

IGNORE_INDEX = -100


@dataclass(frozen=True)
class ImageQuestions:
    """All question/answer rows about one image."""

    product_id: str
    image: Path
    rows: tuple[dict[str, str], ...]


def group_by_image(rows: Sequence[dict[str, str]], data_dir: Path) -> list[ImageQuestions]:
    grouped: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        grouped[(row["id"], row["image"])].append(row)
    return [
        ImageQuestions(product_id, Path(data_dir) / image, tuple(items))
        for (product_id, image), items in grouped.items()
    ]


def batches(
    items: Sequence[ImageQuestions], size: int, generator: torch.Generator | None = None
) -> Iterator[list]:
    order = torch.randperm(len(items), generator=generator).tolist() if generator else range(len(items))
    chunk: list[ImageQuestions] = []
    for index in order:
        chunk.append(items[index])
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_images(items: Sequence[ImageQuestions]) -> list[Image.Image]:
    images = []
    for item in items:
        with Image.open(item.image) as image:
            images.append(image.convert("RGB"))
    return images


def encode_batch(
    processor: Any, items: Sequence[ImageQuestions], device: torch.device, with_labels: bool = True
) -> dict[str, torch.Tensor]:
    """Pixel values per image; token ids, attention masks and -100-masked labels per question."""
    pixel_values = processor.image_processor(images=load_images(items), return_tensors="pt").pixel_values
    questions = [row["question"] for item in items for row in item.rows]
    image_index = torch.tensor([i for i, item in enumerate(items) for _ in item.rows], dtype=torch.long)
    tokens = processor.tokenizer(questions, padding=True, return_tensors="pt")
    batch = {
        "pixel_values": pixel_values,
        "image_index": image_index,
        "input_ids": tokens.input_ids,
        "attention_mask": tokens.attention_mask,
    }
    if with_labels:
        answers = [row["answer"] for item in items for row in item.rows]
        targets = processor.tokenizer(answers, padding=True, return_tensors="pt")
        labels = targets.input_ids.masked_fill(targets.attention_mask == 0, IGNORE_INDEX)
        batch["labels"] = labels
    return {name: tensor.to(device) for name, tensor in batch.items()}


def _prefix_inputs(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    language_model = model.language_model
    features = model.get_image_features(pixel_values=batch["pixel_values"], return_dict=True).pooler_output
    text_embeds = language_model.get_input_embeddings()(batch["input_ids"])
    image_embeds = features[batch["image_index"]].to(text_embeds.dtype)
    image_mask = torch.ones(
        image_embeds.shape[:2], dtype=batch["attention_mask"].dtype, device=text_embeds.device
    )
    return torch.cat([image_embeds, text_embeds], dim=1), torch.cat(
        [image_mask, batch["attention_mask"]], dim=1
    )


def question_answer_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean token cross-entropy of the answers (padding excluded by the -100 labels)."""
    inputs_embeds, attention_mask = _prefix_inputs(model, batch)
    output = model.language_model(
        inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=batch["labels"]
    )
    return output.loss


@torch.inference_mode()
def generate_answers(
    model: Any,
    processor: Any,
    items: Sequence[ImageQuestions],
    device: torch.device,
    max_new_tokens: int = MAX_ANSWER_TOKENS,
) -> list[str]:
    """Greedy answers, one per row of ``items`` in order."""
    batch = encode_batch(processor, items, device, with_labels=False)
    inputs_embeds, attention_mask = _prefix_inputs(model, batch)
    output = greedy_decode(model, inputs_embeds, attention_mask, max_new_tokens)
    return [text.strip() for text in processor.tokenizer.batch_decode(output, skip_special_tokens=True)]
