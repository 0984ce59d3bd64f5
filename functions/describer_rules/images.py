"""Image checks done before any model sees an upload: format by magic bytes, size, pixel count, decodability.

The pixel count is read from the header before anything is decoded, so a decompression bomb is
refused without allocating its pixels; Pillow's own bomb guard is set to the same limit as a
second line of defence.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from enum import StrEnum

from PIL import Image
from pydantic import BaseModel, Field

from describer_rules.contracts import ErrorCode
from describer_rules.errors import InvalidInput


class ImageSettings(BaseModel):
    """The image limits: the pipeline's Prepare and the endpoint check uploads against the same ones."""

    max_image_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)


class ImageFormat(StrEnum):
    JPEG = "JPEG"
    PNG = "PNG"
    WEBP = "WEBP"


_OTHER_FORMATS = {
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"%PDF": "PDF",
}

# Bytes needed to recognise any accepted format.
MAGIC_BYTES = 12


class ImageFacts(BaseModel):
    format: ImageFormat
    width: int
    height: int
    bytes: int
    sha256: str


def sniff_format(head: bytes) -> ImageFormat:
    """The accepted format the leading bytes announce, else NOT_AN_IMAGE naming what it is."""
    if head.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ImageFormat.PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    for magic, name in _OTHER_FORMATS.items():
        if head.startswith(magic):
            raise InvalidInput(f"{name} is not accepted; upload JPEG, PNG or WebP", ErrorCode.NOT_AN_IMAGE)
    raise InvalidInput("not a JPEG, PNG or WebP image", ErrorCode.NOT_AN_IMAGE)


def check_size(size: int, max_bytes: int) -> None:
    if size <= 0:
        raise InvalidInput("the object is empty", ErrorCode.NOT_AN_IMAGE)
    if size > max_bytes:
        raise InvalidInput(f"{size} bytes is over the {max_bytes}-byte limit", ErrorCode.IMAGE_TOO_LARGE)


def inspect_image(data: bytes, max_bytes: int, max_pixels: int) -> ImageFacts:
    """Validate ``data`` as an acceptable image and describe it; raise InvalidInput otherwise."""
    check_size(len(data), max_bytes)
    announced = sniff_format(data[:MAGIC_BYTES])
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header_only:
                width, height = header_only.size
                detected = header_only.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(f"more than {max_pixels} pixels", ErrorCode.IMAGE_TOO_MANY_PIXELS) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidInput(f"{announced} header unreadable: {error}", ErrorCode.IMAGE_UNDECODABLE) from None
    if width * height > max_pixels:
        raise InvalidInput(
            f"{width}x{height} is more than {max_pixels} pixels", ErrorCode.IMAGE_TOO_MANY_PIXELS
        )
    if detected != announced.value:
        raise InvalidInput(
            f"magic bytes say {announced}, decoder says {detected}", ErrorCode.IMAGE_UNDECODABLE
        )
    _decode_fully(data, announced)
    return ImageFacts(
        format=announced, width=width, height=height, bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


def _decode_fully(data: bytes, announced: ImageFormat) -> None:
    # verify() checks structure and checksums but leaves the image unusable, so decode a second
    # handle too: load() is what catches truncated pixel data.
    try:
        with Image.open(io.BytesIO(data)) as structure:
            structure.verify()
        with Image.open(io.BytesIO(data)) as pixels:
            pixels.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidInput(f"{announced} does not decode: {error}", ErrorCode.IMAGE_UNDECODABLE) from None
