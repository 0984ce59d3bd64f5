"""BLIP-2's language model given an image's query features: the prompt layout, and greedy answers.

The layout is that of ``Blip2Processor`` + ``Blip2ForConditionalGeneration.generate``: the query
features take the place of the image tokens in front of the tokenized prompt. Prompts are right
padded, so every prompt of a batch sits at the positions it has alone.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch
from transformers import Blip2ForConditionalGeneration


class PromptTokenizer:
    """The processor's tokenizer, right padding, one call at a time.

    A fast tokenizer's padding state lives in one Rust object: concurrent calls must take turns.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str], device: torch.device) -> Any:
        with self._lock:
            tokens = self.tokenizer(list(texts), padding=True, padding_side="right", return_tensors="pt")
        return tokens.to(device)

    def decode(self, token_ids: torch.Tensor) -> list[str]:
        return [text.strip() for text in self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)]


def prefix_inputs(
    model: Blip2ForConditionalGeneration,
    tokenizer: PromptTokenizer,
    features: torch.Tensor,
    prompts: Sequence[str],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The language model's input: query features (one image's, or one per prompt) before each prompt."""
    tokens = tokenizer(prompts, model.device)
    text_embeds = model.language_model.get_input_embeddings()(tokens.input_ids)
    image_embeds = features.to(text_embeds.dtype).expand(len(prompts), -1, -1)
    image_mask = torch.ones(image_embeds.shape[:2], dtype=tokens.attention_mask.dtype, device=model.device)
    return (
        torch.cat([image_embeds, text_embeds], dim=1),
        torch.cat([image_mask, tokens.attention_mask], dim=1),
    )


@torch.inference_mode()
def generate_answers(
    model: Blip2ForConditionalGeneration,
    tokenizer: PromptTokenizer,
    features: torch.Tensor,
    prompts: Sequence[str],
    max_new_tokens: int,
) -> list[str]:
    """Greedy answers to ``prompts`` about one image, decoded as one batch."""
    inputs_embeds, attention_mask = prefix_inputs(model, tokenizer, features, prompts)
    return tokenizer.decode(greedy_decode(model, inputs_embeds, attention_mask, max_new_tokens))


def greedy_decode(
    model: Any, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int
) -> torch.Tensor:
    """The answer's tokens, greedily, after the prefix: how the endpoint and training's evaluation
    generate."""
    output: torch.Tensor = model.language_model.generate(
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
    )
    return output
