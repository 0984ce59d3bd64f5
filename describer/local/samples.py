"""Uploads for the demo, the benchmark and the integration test: synthetic photos and bad files.

Photos come from the synthetic catalogue (``training.synth``) with a seed and ids of their own, so
they are products the demo model never saw; their attributes are known. Bad files cover every
rejection the pipeline records for an upload: not an image (text, empty, GIF), a truncated JPEG,
a decompression bomb and a file over the size limit.
"""

from __future__ import annotations

import io
import random
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from describer_rules.contracts import ErrorCode
from describer_rules.images import ImageSettings
from training.synth import DRAWN, sample_product, write_synthetic_catalogue
from training.views import View, render_views, view_catalogue

SAMPLE_SEED = 20261121
SAMPLE_FIRST_ID = 900_000
BAD_FIRST_ID = 990_000
# The pipeline's default size limit (the template's MaxImageBytes default is the same).
DEFAULT_MAX_IMAGE_BYTES = ImageSettings().max_image_bytes


@dataclass(frozen=True)
class SampleFile:
    path: Path
    key: str  # after the upload prefix: <Category>/<product id>.<ext>
    product_id: str
    category: str
    truth: dict[str, str] | None = None  # the attributes the photo was drawn with
    expected_error: ErrorCode | None = None  # bad files: the record's error code


def synthetic_photos(
    out_dir: Path, per_category: int, seed: int = SAMPLE_SEED, first_id: int = SAMPLE_FIRST_ID
) -> list[SampleFile]:
    """``per_category`` held-out photos of each synthetic category in ``out_dir/<Category>/<id>.jpg``;
    their product ids count from ``first_id``, so two sets with other first ids are other products."""
    with tempfile.TemporaryDirectory() as scratch:
        # Categories are drawn at random: enough products that each gets its share.
        products = write_synthetic_catalogue(
            Path(scratch),
            products=per_category * len(DRAWN) * 3 + 20,
            seed=seed,
            first_id=first_id,
            progress=False,
        )
        samples: list[SampleFile] = []
        taken: dict[str, int] = {}
        for product in products:
            category = product.article_type
            if taken.get(category, 0) >= per_category:
                continue
            taken[category] = taken.get(category, 0) + 1
            key = f"{category}/{product.product_id}.jpg"
            target = out_dir / key
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(scratch) / "images" / f"{product.product_id}.jpg", target)
            truth = product.truth
            samples.append(SampleFile(target, key, str(product.product_id), category, truth=truth))
    return sorted(samples, key=lambda sample: sample.key)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb_png(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (400 megapixels by default) in a few dozen kilobytes."""
    row = b"\x00" + bytes((side + 7) // 8)  # filter byte + one all-black row
    compressor = zlib.compressobj(9)
    compressed = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", compressed)
        + _png_chunk(b"IEND", b"")
    )


def _jpeg(size: tuple[int, int] = (96, 96), seed: int = 0) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (32, 32), 3).save(buffer, "GIF")
    return buffer.getvalue()


def bad_files(out_dir: Path, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> list[SampleFile]:
    """One upload per rejection the pipeline records, each with the error code it must end with."""
    photo = _jpeg()
    oversized = photo + bytes(max_image_bytes + 1 - len(photo))  # a JPEG padded past the size limit
    cases: list[tuple[str, str, bytes, ErrorCode]] = [
        ("Shirts", "txt", b"This is a note about a shirt, not a photo of one.\n", ErrorCode.NOT_AN_IMAGE),
        ("Tshirts", "jpg", b"", ErrorCode.NOT_AN_IMAGE),
        ("Tshirts", "gif", _gif(), ErrorCode.NOT_AN_IMAGE),
        ("Shirts", "jpg", photo[: len(photo) // 2], ErrorCode.IMAGE_UNDECODABLE),
        ("Tshirts", "png", decompression_bomb_png(), ErrorCode.IMAGE_TOO_MANY_PIXELS),
        ("Shirts", "jpg", oversized, ErrorCode.IMAGE_TOO_LARGE),
    ]
    files = []
    for offset, (category, extension, content, code) in enumerate(cases, start=1):
        product_id = str(BAD_FIRST_ID + offset)
        key = f"{category}/{product_id}.{extension}"
        target = out_dir / key
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != content:
            target.write_bytes(content)
        files.append(SampleFile(target, key, product_id, category, expected_error=code))
    return files


# --- several photos per product -----------------------------------------------------------------------

PHOTO_SET_FIRST_ID = 950_000
# File names of a product folder's views: key order puts the front photo first (the primary image).
VIEW_FILE_NAMES = {View.FRONT: "1-front.jpg", View.BACK: "2-back.jpg", View.DETAIL: "3-detail.jpg"}


@dataclass(frozen=True)
class PhotoFolder:
    """One product photographed from every view, under ``<Category>/<product id>/`` (after the prefix)."""

    folder: str
    product_id: str
    category: str
    photos: dict[str, Path]  # file name -> file
    truth: dict[str, str]

    def files(self) -> list[tuple[Path, str]]:
        """(file, key after the upload prefix) of every photo."""
        return [(path, f"{self.folder}{name}") for name, path in sorted(self.photos.items())]


def photo_folders(out_dir: Path, count: int, seed: int = SAMPLE_SEED) -> list[PhotoFolder]:
    """``count`` held-out products, each drawn front, back and detail (``training.views``)."""
    rng, catalogue = random.Random(seed + 1), view_catalogue()
    folders = []
    for index in range(count):
        product = sample_product(PHOTO_SET_FIRST_ID + index, rng, catalogue)
        folder = f"{product.article_type}/{product.product_id}/"
        photos = {}
        for view, image in render_views(product, rng).items():
            target = out_dir / folder / VIEW_FILE_NAMES[view]
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, quality=92)
            photos[VIEW_FILE_NAMES[view]] = target
        truth = product.truth
        folders.append(PhotoFolder(folder, str(product.product_id), product.article_type, photos, truth))
    return folders


def truncated_jpeg(target: Path) -> Path:
    """A JPEG cut short: recognised by its magic bytes, undecodable (IMAGE_UNDECODABLE)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    photo = _jpeg(seed=3)
    target.write_bytes(photo[: len(photo) // 2])
    return target
