from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from describer_rules.contracts import ErrorCode
from describer_rules.errors import InvalidInput
from describer_rules.images import ImageFormat, inspect_image

from .conftest import image_bytes

MAX_BYTES = 200_000
MAX_PIXELS = 1_000_000


def _inspect(data: bytes):
    return inspect_image(data, MAX_BYTES, MAX_PIXELS)


def _code(data: bytes) -> ErrorCode:
    with pytest.raises(InvalidInput) as raised:
        _inspect(data)
    return raised.value.code


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_are_described(image_format: str) -> None:
    facts = _inspect(image_bytes(image_format, (64, 48)))
    assert (facts.format, facts.width, facts.height) == (ImageFormat(image_format), 64, 48)
    assert len(facts.sha256) == 64


def test_text_is_not_an_image() -> None:
    assert _code(b"product,colour\n15970,Blue\n") is ErrorCode.NOT_AN_IMAGE


def test_an_empty_object_is_not_an_image() -> None:
    assert _code(b"") is ErrorCode.NOT_AN_IMAGE


def test_gif_is_refused_by_its_magic_bytes() -> None:
    with pytest.raises(InvalidInput) as raised:
        _inspect(image_bytes("GIF"))
    assert raised.value.code is ErrorCode.NOT_AN_IMAGE
    assert "GIF" in str(raised.value)


def test_too_many_bytes() -> None:
    assert _code(b"\xff\xd8\xff" + bytes(MAX_BYTES)) is ErrorCode.IMAGE_TOO_LARGE


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that announces ``width`` x ``height`` but carries one tiny compressed row: a bomb's shape."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    data = zlib.compress(b"\x00" * 16)
    idat_chunk = b"IDAT" + data
    idat = struct.pack(">I", len(data)) + idat_chunk + struct.pack(">I", zlib.crc32(idat_chunk))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat


@pytest.mark.parametrize("size", [(1001, 1000), (30_000, 30_000)])
def test_too_many_pixels_is_refused_from_the_header(size: tuple[int, int]) -> None:
    assert _code(_png_header_only(*size)) is ErrorCode.IMAGE_TOO_MANY_PIXELS


def test_truncated_jpeg_is_undecodable() -> None:
    data = image_bytes("JPEG", (256, 256))
    assert _code(data[: len(data) // 2]) is ErrorCode.IMAGE_UNDECODABLE


def test_corrupt_png_is_undecodable() -> None:
    data = bytearray(image_bytes("PNG", (32, 32)))
    data[40:60] = bytes(20)
    assert _code(bytes(data)) is ErrorCode.IMAGE_UNDECODABLE


def test_magic_bytes_that_lie_are_undecodable() -> None:
    assert _code(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20) is ErrorCode.IMAGE_UNDECODABLE


def test_pillow_bomb_guard_follows_the_limit() -> None:
    _inspect(image_bytes("PNG", (10, 10)))
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(_png_header_only(3000, 3000)))
