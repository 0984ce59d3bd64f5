"""The demo's bad files are exactly the rejections the pipeline's image checks make; the photos pass them."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from describer.local.samples import bad_files, decompression_bomb_png, synthetic_photos
from describer_rules.errors import InvalidInput
from describer_rules.images import ImageSettings, check_size, inspect_image
from describer_rules.keys import identify
from training.synth import DRAWN

LIMITS = ImageSettings()


def _check(path: Path) -> None:
    data = path.read_bytes()
    check_size(len(data), LIMITS.max_image_bytes)
    inspect_image(data[: LIMITS.max_image_bytes + 1], LIMITS.max_image_bytes, LIMITS.max_image_pixels)


def test_each_bad_file_is_rejected_with_its_expected_code(tmp_path: Path) -> None:
    files = bad_files(tmp_path, LIMITS.max_image_bytes)
    assert len({file.product_id for file in files}) == len(files)
    for file in files:
        with pytest.raises(InvalidInput) as raised:
            _check(file.path)
        assert raised.value.code == file.expected_error, file.key


def test_the_bomb_is_small_on_disk_and_huge_in_pixels() -> None:
    data = decompression_bomb_png()
    assert len(data) < 200_000
    width, height = struct.unpack(">II", data[16:24])  # IHDR, right after the signature
    assert width * height > LIMITS.max_image_pixels
    # Every row is there: the file decompresses to the full image, it is not a truncated header.
    assert len(zlib.decompress(data[41:-12][:-4])) == height * (1 + (width + 7) // 8)


def test_synthetic_photos_are_valid_uploads_named_by_the_key_convention(tmp_path: Path) -> None:
    photos = synthetic_photos(tmp_path, per_category=2)
    assert sorted(photo.category for photo in photos) == sorted(2 * list(DRAWN))
    for photo in photos:
        _check(photo.path)
        parts = identify("incoming/" + photo.key, "incoming/", {})
        assert (parts.product_id, parts.category_hint) == (photo.product_id, photo.category)
        assert photo.truth is not None
        assert {"Colour", *DRAWN[photo.category]} == set(photo.truth)
