"""Scored answers: each allowed value of an attribute, as the answer text the model was trained to
produce, gets its likelihood given the image and the question; a calibrated softmax picks the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import Blip2ForConditionalGeneration

from describer_core.answers import format_answer
from describer_core.confidence import MAX_ALTERNATIVES, Calibration, softmax
from describer_core.contracts import Alternative, AttributeAnswer
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
    encoder runs once per prompt; every candidate of every prompt is decoded in one batch. The
    sum, not the per-token mean: the tokens an attribute's candidates share ("Sleeve Length:")
    then add the same amount to each and cancel in the softmax, and the end-of-sequence token
    keeps a value apart from a longer one it begins ("Slim" / "Slim Fit").
    """
    language_model = model.language_model
    inputs_embeds, attention_mask = prefix_inputs(model, tokenizer, features, prompts)
    encoded = language_model.get_encoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
    owner = torch.tensor(
        [index for index, texts in enumerate(candidates) for _ in texts],
        dtype=torch.long,
        device=model.device,
    )
    targets = tokenizer([text for texts in candidates for text in texts], model.device)
    labels = targets.input_ids.masked_fill(targets.attention_mask == 0, -100)
    output = language_model(
        encoder_outputs=(encoded.last_hidden_state[owner],),
        attention_mask=attention_mask[owner],
        decoder_input_ids=language_model.prepare_decoder_input_ids_from_labels(labels=labels),
    )
    token_scores = output.logits.float().log_softmax(dim=-1)
    token_scores = token_scores.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    sums = (token_scores * targets.attention_mask).sum(dim=-1).tolist()
    scores: list[list[float]] = []
    for texts in candidates:
        scores.append(sums[: len(texts)])
        sums = sums[len(texts) :]
    return scores


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
