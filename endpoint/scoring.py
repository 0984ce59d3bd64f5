"""Scored answers: each allowed value of an attribute, as the answer text the model was trained to
produce, gets its likelihood given the image and the question; a calibrated softmax picks the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import Blip2ForConditionalGeneration

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


# A row of the packed decoder batch holds whole prefix trees up to this many nodes (more when one
# tree alone is larger): the rows' self- and cross-attention grow with the square of their length,
# while short rows would pad the small trees out to the largest one.
ROW_NODES = 128


@dataclass
class _PrefixTree:
    """One prompt's candidates as a tree of token prefixes: one node per distinct prefix.

    Node 0 is the decoder start token (depth 0); a node at depth k holds its prefix's k-th token and
    its output predicts the next one. ``steps[candidate]`` are the (node, next token) pairs whose
    log-probabilities sum to the candidate's score, its end-of-sequence token last.
    """

    tokens: list[int]
    depths: list[int]
    parents: list[int]
    steps: list[list[tuple[int, int]]]

    @classmethod
    def of(cls, start_token: int, candidates: Sequence[Sequence[int]]) -> _PrefixTree:
        tree = cls(tokens=[start_token], depths=[0], parents=[-1], steps=[])
        children: dict[tuple[int, int], int] = {}
        for token_ids in candidates:
            node, steps = 0, []
            for position, token in enumerate(token_ids):
                steps.append((node, token))
                if position == len(token_ids) - 1:
                    break  # the last token (end of sequence) predicts nothing that is scored
                child = children.get((node, token))
                if child is None:
                    child = children[(node, token)] = len(tree.tokens)
                    tree.tokens.append(token)
                    tree.depths.append(tree.depths[node] + 1)
                    tree.parents.append(node)
                node = child
            tree.steps.append(steps)
        return tree

    def __len__(self) -> int:
        return len(self.tokens)


def _pack(trees: Sequence[_PrefixTree]) -> list[list[int]]:
    """Prompt indices per decoder row, first-fit by decreasing size within ``ROW_NODES``."""
    capacity = max([ROW_NODES, *(len(tree) for tree in trees)])
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(trees)), key=lambda i: -len(trees[i])):
        size = len(trees[index])
        row = next((row for row, left in enumerate(room) if left >= size), None)
        if row is None:
            rows.append([])
            room.append(capacity)
            row = len(rows) - 1
        rows[row].append(index)
        room[row] -= size
    return rows


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
    sum, not the per-token mean: the tokens an attribute's candidates share ("Sleeve Length:")
    then add the same amount to each and cancel in the softmax, and the end-of-sequence token
    keeps a value apart from a longer one it begins ("Slim" / "Slim Fit").

    The encoder runs once per prompt. The decoder runs once per distinct token prefix, not once per
    candidate token: each prompt's candidates become a prefix tree (``_PrefixTree``; 34 colours
    share "Colour:"), whole trees are packed into the rows of one decoder pass, and each node
    attends to exactly its ancestors, at their depths, and to its own prompt's encoder output: the
    keys, values and position biases the decoder sees for each candidate alone. A vocabulary that
    grows adds only its values' distinct tokens.
    """
    language_model = model.language_model
    inputs_embeds, attention_mask = prefix_inputs(model, tokenizer, features, prompts)
    encoder_states = language_model.get_encoder()(
        inputs_embeds=inputs_embeds, attention_mask=attention_mask
    ).last_hidden_state
    targets = tokenizer([text for texts in candidates for text in texts], torch.device("cpu"))
    token_ids = [
        ids[:length]
        for ids, length in zip(
            targets.input_ids.tolist(), targets.attention_mask.sum(-1).tolist(), strict=True
        )
    ]
    start = int(language_model.config.decoder_start_token_id)
    trees, offset = [], 0
    for texts in candidates:
        trees.append(_PrefixTree.of(start, token_ids[offset : offset + len(texts)]))
        offset += len(texts)
    log_probs = _decode_trees(language_model, encoder_states, attention_mask, trees)
    nodes: list[int] = []
    tokens: list[int] = []
    owners: list[int] = []
    first_node = candidate = 0
    for tree in trees:
        for steps in tree.steps:
            owners += [candidate] * len(steps)
            candidate += 1
            nodes += [first_node + node for node, _ in steps]
            tokens += [token for _, token in steps]
        first_node += len(tree)
    device = log_probs.device
    picked = log_probs[torch.tensor(nodes, device=device), torch.tensor(tokens, device=device)]
    totals = torch.zeros(len(token_ids), dtype=picked.dtype, device=device)
    sums: list[float] = totals.index_add_(0, torch.tensor(owners, device=device), picked).tolist()
    scores: list[list[float]] = []
    for texts in candidates:
        scores.append(sums[: len(texts)])
        sums = sums[len(texts) :]
    return scores


def _decode_trees(
    language_model: Any,
    encoder_states: torch.Tensor,
    encoder_mask: torch.Tensor,
    trees: Sequence[_PrefixTree],
) -> torch.Tensor:
    """Next-token log-probabilities (float) of every node of every tree, tree after tree: one pass
    of T5's decoder blocks over packed rows of whole trees."""
    rows = _pack(trees)
    device, dtype = encoder_states.device, encoder_states.dtype
    span = encoder_states.shape[1]
    length = max(sum(len(trees[index]) for index in row) for row in rows)
    tokens = torch.zeros(len(rows), length, dtype=torch.long)
    depths = torch.zeros(len(rows), length, dtype=torch.long)
    # Padding positions read slot 0's encoder output; no node reads them.
    slots = torch.zeros(len(rows), length, dtype=torch.long)
    row_prompts = torch.zeros(len(rows), max(len(row) for row in rows), dtype=torch.long)
    ancestors: list[list[int]] = [[], [], []]  # (row, node, ancestor-or-self) triples
    positions: list[list[int]] = [[] for _ in trees]  # each tree's nodes in the packed rows
    for row, members in enumerate(rows):
        at = 0
        for slot, index in enumerate(members):
            tree = trees[index]
            end = at + len(tree)
            row_prompts[row, slot] = index
            tokens[row, at:end] = torch.tensor(tree.tokens)
            depths[row, at:end] = torch.tensor(tree.depths)
            slots[row, at:end] = slot
            lineage: list[list[int]] = []
            for node, parent in enumerate(tree.parents):
                lineage.append([*(lineage[parent] if parent >= 0 else []), at + node])
                ancestors[0] += [row] * len(lineage[node])
                ancestors[1] += [at + node] * len(lineage[node])
                ancestors[2] += lineage[node]
            positions[index] = [row * length + position for position in range(at, end)]
            at = end
    attends = torch.eye(length, dtype=torch.bool).repeat(len(rows), 1, 1)  # padding: itself only
    attends[ancestors[0], ancestors[1], ancestors[2]] = True
    key_slots = torch.arange(row_prompts.shape[1] * span) // span
    cross = (slots[:, :, None] == key_slots) & encoder_mask.bool().cpu()[row_prompts].flatten(1)[:, None, :]
    blocked = torch.finfo(dtype).min
    self_mask = torch.zeros(attends.shape, dtype=dtype).masked_fill_(~attends, blocked)
    cross_mask = torch.zeros(cross.shape, dtype=dtype).masked_fill_(~cross, blocked)

    decoder = language_model.get_decoder()
    first = decoder.block[0].layer[0].SelfAttention
    buckets = first._relative_position_bucket(
        depths[:, None, :] - depths[:, :, None],  # key depth - query depth, as T5's compute_bias
        bidirectional=False,
        num_buckets=first.relative_attention_num_buckets,
        max_distance=first.relative_attention_max_distance,
    )
    position_bias = first.relative_attention_bias(buckets.to(device)).permute(0, 3, 1, 2)
    self_mask, cross_mask = self_mask[:, None].to(device), cross_mask[:, None].to(device)
    memory = encoder_states[row_prompts.to(device)].flatten(1, 2)
    hidden = decoder.embed_tokens(tokens.to(device))
    for block in decoder.block:
        hidden = block(
            hidden,
            attention_mask=self_mask,
            position_bias=position_bias,
            encoder_hidden_states=memory,
            encoder_attention_mask=cross_mask,
        )[0]
    real = [position for nodes in positions for position in nodes]
    hidden = decoder.final_layer_norm(hidden).flatten(0, 1)[torch.tensor(real, device=device)]
    if language_model.config.scale_decoder_outputs:
        hidden = hidden * language_model.model_dim**-0.5
    log_probs: torch.Tensor = language_model.lm_head(hidden).float().log_softmax(dim=-1)
    return log_probs


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
