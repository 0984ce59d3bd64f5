"""The frozen encoder's features of each photo, computed once and kept on disk by the photo's sha256.

The EfficientNet preset's image encoder never changes during training, so its features
(``EfficientNetVision.frozen_features``) are computed once per photo and every epoch reads them back:
training the Q-Former and language model then costs minutes on a CPU instead of hours. Entries are
keyed by the photo's bytes, so a held-aside split and the full folder share them; a change of the
features' definition changes ``FEATURES_VERSION`` and with it the folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from endpoint.vision_encoders import FEATURE_DIM, EfficientNetVision

FEATURES_VERSION = "efficientnet-lite0-v1"
DEFAULT_CACHE_DIR = Path(".cache") / "encoder-features"
BATCH_SIZE = 32


def _entry(cache_dir: Path, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return cache_dir / FEATURES_VERSION / digest[:2] / f"{digest}.npy"


def encoder_features(
    images: Sequence[Path],
    vision: EfficientNetVision,
    image_processor: object,
    *,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    progress: bool = True,
) -> np.ndarray:
    """(len(images), FEATURE_DIM) float16: each photo's frozen features, from the cache when there."""
    out = np.zeros((len(images), FEATURE_DIM), dtype=np.float16)
    missing: list[tuple[int, Path, Image.Image]] = []
    entries: list[Path] = []
    for index, path in enumerate(
        tqdm(images, desc="reading cached features", unit="photo", disable=not progress)
    ):
        data = Path(path).read_bytes()
        entry = _entry(cache_dir, data)
        entries.append(entry)
        if entry.is_file():
            out[index] = np.load(entry)
        else:
            with Image.open(path) as image:
                missing.append((index, entry, image.convert("RGB")))
    vision.eval()
    bar = tqdm(
        total=len(missing), desc="encoding photos (EfficientNet-Lite0)", unit="photo", disable=not progress
    )
    for start in range(0, len(missing), BATCH_SIZE):
        chunk = missing[start : start + BATCH_SIZE]
        pixels = image_processor(images=[image for _, _, image in chunk], return_tensors="pt").pixel_values  # type: ignore[operator]
        with torch.inference_mode():
            features = (
                vision.frozen_features(pixels.to(vision.grid_projection.weight.device)).half().cpu().numpy()
            )
        for (index, entry, _), row in zip(chunk, features, strict=True):
            entry.parent.mkdir(parents=True, exist_ok=True)
            np.save(entry, row)
            out[index] = row
        bar.update(len(chunk))
    bar.close()
    return out
