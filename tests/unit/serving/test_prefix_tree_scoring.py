"""Scoring through prefix trees (``endpoint.scoring``) gives the scores of the padded teacher-forced
batch it replaced, with a decoder pass per distinct token prefix instead of per candidate token."""

from __future__ import annotations

import pytest
import torch

from benchmarks.endpoint_speedup import benchmark_questions, product_photo
from describer_rules.answers import format_answer
from endpoint import scoring
from endpoint.generation import prefix_inputs
from endpoint.model import DescriberModel
from endpoint.requests import decode_image
from endpoint.scoring import _PrefixTree

SMALL_PHOTO = (96, 128)
# Values that begin one another ("Slim" / "Slim Fit"), share words, repeat, or stand alone.
SHARED_PREFIXES = [
    ["Slim", "Slim Fit", "Slim Fit Tall", "Regular", "Regular Fit", "Relaxed"],
    ["Long Sleeves", "Long Sleeves", "Short Sleeves", "Sleeveless"],
    ["Black"],
    ["Navy Blue", "Navy", "Blue", "Light Blue", "Sky Blue", "Blue Grey", "Grey"],
]
ATTRIBUTES = ["Fit", "Sleeve Length", "Colour", "Colour"]
PROMPTS = [
    "What is the fit of the shirt in this picture?",
    "What is the sleeve length of the shirt in this picture?",
    "What is the colour of the product in this picture?",
    "Which colour is it?",
]


@torch.inference_mode()
def padded_batch_scores(
    endpoint: DescriberModel, features: torch.Tensor, prompts: list[str], candidates: list[list[str]]
) -> list[list[float]]:
    """The previous path: every candidate a padded row of one teacher-forced decoder batch."""
    language_model = endpoint.model.language_model
    inputs_embeds, attention_mask = prefix_inputs(endpoint.model, endpoint.tokenizer, features, prompts)
    encoded = language_model.get_encoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
    owner = torch.tensor([index for index, texts in enumerate(candidates) for _ in texts])
    targets = endpoint.tokenizer([text for texts in candidates for text in texts], endpoint.device)
    labels = targets.input_ids.masked_fill(targets.attention_mask == 0, -100)
    output = language_model(
        encoder_outputs=(encoded.last_hidden_state[owner],),
        attention_mask=attention_mask[owner],
        labels=labels,
    )
    token_scores = output.logits.float().log_softmax(dim=-1)
    token_scores = token_scores.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    sums = (token_scores * targets.attention_mask).sum(dim=-1).tolist()
    scores = []
    for texts in candidates:
        scores.append(sums[: len(texts)])
        sums = sums[len(texts) :]
    return scores


def _texts() -> list[list[str]]:
    return [
        [format_answer(attribute, value) for value in values]
        for attribute, values in zip(ATTRIBUTES, SHARED_PREFIXES, strict=True)
    ]


def test_a_prefix_tree_has_one_node_per_distinct_prefix_and_scores_each_token() -> None:
    # Token ids: 7 8 </s>, 7 9 </s>, 7 8 4 </s> (and a repeat) under the start token 0.
    candidates = [[7, 8, 1], [7, 9, 1], [7, 8, 4, 1], [7, 8, 1]]
    tree = _PrefixTree.of(0, candidates)

    # start, 7, 7-8, 7-9, 7-8-4: the end-of-sequence tokens are scored, never fed back.
    assert tree.tokens == [0, 7, 8, 9, 4]
    assert tree.depths == [0, 1, 2, 2, 3]
    assert tree.parents == [-1, 0, 1, 1, 2]
    assert tree.steps[0] == [(0, 7), (1, 8), (2, 1)]
    assert tree.steps[2] == [(0, 7), (1, 8), (2, 4), (4, 1)]
    assert tree.steps[3] == tree.steps[0]


def test_prefix_tree_scores_equal_the_padded_batch_on_shared_prefixes(endpoint: DescriberModel) -> None:
    features = endpoint.encode_image(decode_image(product_photo(7, SMALL_PHOTO)))
    texts = _texts()

    expected = padded_batch_scores(endpoint, features, PROMPTS, texts)
    scores = endpoint.score_candidates(features, PROMPTS, texts)

    assert [len(row) for row in scores] == [len(row) for row in texts]
    for got, want in zip(scores, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
    assert scores[1][0] == scores[1][1]  # a repeated value scores the same
    assert len({round(score, 3) for row in scores for score in row}) > 10  # the scores differ


@pytest.mark.parametrize("row_nodes", [1, 12])
def test_trees_packed_in_several_rows_score_as_in_one(
    endpoint: DescriberModel, monkeypatch: pytest.MonkeyPatch, row_nodes: int
) -> None:
    # Two photos' prompts in one call, as the batcher sends concurrent requests: each prompt its features.
    photos = [endpoint.encode_image(decode_image(product_photo(seed, SMALL_PHOTO))) for seed in (8, 9)]
    features = torch.cat([photo.expand(len(PROMPTS), -1, -1) for photo in photos])
    prompts, texts = PROMPTS * 2, _texts() * 2
    expected = padded_batch_scores(endpoint, features, prompts, texts)

    monkeypatch.setattr(scoring, "ROW_NODES", row_nodes)
    rows = scoring._pack([_PrefixTree.of(0, [[2] * len(text) for text in group]) for group in texts])
    scores = endpoint.score_candidates(features, prompts, texts)

    assert 1 < len(rows) < len(texts) or row_nodes == 1
    for got, want in zip(scores, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
    assert scores[:4] != scores[4:]  # the photos' own features, not the first photo's


def test_the_decoder_runs_once_per_distinct_prefix_of_the_catalogues_vocabularies(
    endpoint: DescriberModel,
) -> None:
    category, questions = benchmark_questions(endpoint.catalogue, 8)
    texts = [
        [
            format_answer(question.attribute, value)
            for value in endpoint._attribute_spec(category, question.attribute).values
        ]
        for question in questions
    ]
    tokens = endpoint.tokenizer([text for group in texts for text in group], torch.device("cpu"))
    lengths = tokens.attention_mask.sum(-1).tolist()
    trees, offset = [], 0
    for group in texts:
        ids = [tokens.input_ids[row, : lengths[row]].tolist() for row in range(offset, offset + len(group))]
        trees.append(_PrefixTree.of(0, ids))
        offset += len(group)

    nodes = sum(len(tree) for tree in trees)
    # The padded batch ran every candidate at the longest candidate's length.
    assert nodes * 2 < len(lengths) * max(lengths)
    assert nodes < sum(lengths)
