"""Scored answers: each allowed value of an attribute, as the answer text the model was trained to
produce, gets its likelihood given the image and the question; a calibrated softmax picks the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import Blip2ForConditionalGeneration, DynamicCache, EncoderDecoderCache

from describer_rules.answers import format_answer
from describer_rules.confidence import MAX_ALTERNATIVES, Calibration, softmax
from describer_rules.contracts import Alternative, AttributeAnswer
from endpoint.generation import PromptTokenizer, prefix_inputs


@dataclass(frozen=True)
class CandidateScores:
    """A scored question: the attribute's values and their summed log-likelihoods."""

    attribute: str
    values: list[str]
    scores: list[float]


@torch.inference_mode()
def score_candidates(
    model: Blip2ForConditionalGeneration,
    tokenizer: PromptTokenizer,
    features: torch.Tensor,
    prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
) -> list[list[float]]:
    """Summed log-likelihood of each candidate answer text to its prompt.

    Teacher-forced, tokenized as training tokenized its targets (end of sequence included). The
    encoder runs once per prompt, and so do the decoder's cross-attention projections of its output
    (``_shared_cross_attention``); every candidate of every prompt is decoded in one batch. The
    sum, not the per-token mean: the tokens an attribute's candidates share ("Sleeve Length:")
    then add the same amount to each and cancel in the softmax, and the end-of-sequence token
    keeps a value apart from a longer one it begins ("Slim" / "Slim Fit").
    """
    language_model = model.language_model
    inputs_embeds, attention_mask = prefix_inputs(model, tokenizer, features, prompts)
    encoded = language_model.get_encoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
    owners = [index for index, texts in enumerate(candidates) for _ in texts]
    owner = torch.tensor(owners, dtype=torch.long, device=model.device)
    targets = tokenizer([text for texts in candidates for text in texts], model.device)
    labels = targets.input_ids.masked_fill(targets.attention_mask == 0, -100)
    encoder_states = encoded.last_hidden_state
    output = language_model(
        # Only its shape is read: every layer's cross-attention comes from the cache.
        encoder_outputs=(encoder_states[:1].expand(len(owners), -1, -1),),
        attention_mask=attention_mask[owner],
        decoder_input_ids=language_model.prepare_decoder_input_ids_from_labels(labels=labels),
        cache=_shared_cross_attention(language_model, encoder_states, owner),
        use_cache=True,
    )
    token_scores = output.logits.float().log_softmax(dim=-1)
    token_scores = token_scores.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    sums = (token_scores * targets.attention_mask).sum(dim=-1).tolist()
    scores: list[list[float]] = []
    for texts in candidates:
        scores.append(sums[: len(texts)])
        sums = sums[len(texts) :]
    return scores


def _shared_cross_attention(
    language_model: Any, encoder_states: torch.Tensor, owner: torch.Tensor
) -> EncoderDecoderCache:
    """Each decoder layer's cross-attention keys and values, projected once per prompt and handed
    to each of its candidates: what the decoder would compute for every candidate alone (T5)."""
    config = language_model.config
    cache = EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
    for index, block in enumerate(language_model.decoder.block):
        attention = block.layer[1].EncDecAttention
        shape = (*encoder_states.shape[:-1], -1, attention.key_value_proj_dim)
        keys = attention.k(encoder_states).view(shape).transpose(1, 2)[owner]
        values = attention.v(encoder_states).view(shape).transpose(1, 2)[owner]
        cache.cross_attention_cache.update(keys, values, index)
        cache.is_updated[index] = True
    return cache


def scored_answer(
    attribute: str,
    values: Sequence[str],
    scores: Sequence[float],
    calibration: Calibration,
    category: str | None = None,
) -> AttributeAnswer:
    """The most probable value at the attribute's calibrated temperature, with its runners-up."""
    probabilities = softmax(scores, calibration.temperature_for(attribute, category))
    ranked = sorted(zip(probabilities, values, strict=True), key=lambda pair: -pair[0])
    (confidence, value), runners_up = ranked[0], ranked[1 : 1 + MAX_ALTERNATIVES]
    return AttributeAnswer(
        attribute=attribute,
        value=value,
        raw=format_answer(attribute, value),
        known=True,
        confidence=confidence,
        alternatives=[Alternative(value=other, confidence=p) for p, other in runners_up],
    )
