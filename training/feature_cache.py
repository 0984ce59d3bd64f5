"""The frozen encoder part's features of each photo, computed once and kept on disk by the photo's sha256.

The EfficientNet preset's image encoder, all but its last blocks, never changes during training, so
its features (``EfficientNetVision.frozen_features``) are computed once per photo, and once for the
photo mirrored left to right (training's augmentation), and every epoch reads them back: training
then costs minutes on a CPU instead of hours. Entries are keyed by the photo's bytes, so a
held-aside split and the full folder share them; a change of the features' definition changes
``FEATURES_VERSION`` and with it the folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from endpoint.vision_encoders import FEATURE_DIM, FIRST_TUNED_BLOCK, EfficientNetVision

FEATURES_VERSION = f"efficientnet-lite0-v2-to-block{FIRST_TUNED_BLOCK}"  # where the frozen part stops
DEFAULT_CACHE_DIR = Path(".cache") / "encoder-features"
BATCH_SIZE = 32


def _entry(cache_dir: Path, data: bytes, mirrored: bool) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return cache_dir / FEATURES_VERSION / digest[:2] / f"{digest}{'-mirrored' if mirrored else ''}.npy"


def encoder_features(
    images: Sequence[Path],
    vision: EfficientNetVision,
    image_processor: object,
    *,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    mirrored: bool = False,
    progress: bool = True,
) -> np.ndarray:
    """(len(images), FEATURE_DIM) float16: each photo's frozen features (of the photo mirrored left to
    right with ``mirrored``), from the cache when there."""
    out = np.zeros((len(images), FEATURE_DIM), dtype=np.float16)
    missing: list[tuple[int, Path, Image.Image]] = []
    what = "mirrored photos" if mirrored else "photos"
    for index, path in enumerate(
        tqdm(images, desc=f"reading cached features of {what}", unit="photo", disable=not progress)
    ):
        data = Path(path).read_bytes()
        entry = _entry(cache_dir, data, mirrored)
        if entry.is_file():
            out[index] = np.load(entry)
        else:
            with Image.open(path) as image:
                photo = image.convert("RGB")
            missing.append(
                (index, entry, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirrored else photo)
            )
    vision.eval()
    bar = tqdm(
        total=len(missing), desc=f"encoding {what} (EfficientNet-Lite0)", unit="photo", disable=not progress
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
