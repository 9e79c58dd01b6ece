"""Decoding and validation of image bytes (medcrawl.model.images)."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from medcrawl.model import images
from medcrawl.model.images import ImageError


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(size=(200, 150), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims huge dimensions (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"hello, this is text", "not_an_image"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "svg_not_supported"),
    (b"%PDF-1.7\n...", "not_an_image"),
    (png_header_only(100_000, 100_000), "decompression_bomb"),
])
def test_bad_bytes_give_specific_reasons(data, reason):
    with pytest.raises(ImageError) as err:
        images.prepare(data, 64)
    assert err.value.reason == reason


def test_truncated_jpeg_is_an_error():
    data = encode(photo((400, 300)), "JPEG", quality=90)
    with pytest.raises(ImageError) as err:
        images.prepare(data[: len(data) // 2], 64)
    assert err.value.reason in ("truncated", "undecodable")


def test_too_small_is_skipped():
    with pytest.raises(ImageError) as err:
        images.prepare(encode(photo((40, 40)), "PNG"), 64, min_size=64)
    assert (err.value.reason, err.value.status) == ("too_small", "skipped")


@pytest.mark.parametrize("mode,fmt", [("RGB", "JPEG"), ("CMYK", "JPEG"), ("L", "PNG"),
                                      ("RGBA", "PNG"), ("P", "GIF"), ("I;16", "PNG"), ("LA", "PNG")])
def test_every_mode_becomes_rgb_model_input(mode, fmt):
    img = photo((120, 90))
    img = img.convert("L").point(lambda v: v * 200).convert("I;16") if mode == "I;16" else img.convert(mode)
    info, arr = images.prepare(encode(img, fmt), 64)
    assert (info.width, info.height) == (120, 90)
    assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8


def test_sixteen_bit_range_is_stretched():
    arr16 = np.linspace(1000, 3000, 100 * 100).reshape(100, 100).astype(np.uint16)
    _, arr = images.prepare(encode(Image.fromarray(arr16), "PNG"), 32)
    assert arr.min() <= 5 and arr.max() >= 250


def test_transparency_goes_onto_white():
    clear = Image.new("RGBA", (80, 80), (0, 0, 0, 0))
    _, arr = images.prepare(encode(clear, "PNG"), 32)
    assert (arr == 255).all()


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (70, 70), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    info, arr = images.prepare(data, 16)
    assert info.frames == 2
    assert arr[..., 0].mean() > 200 and arr[..., 2].mean() < 50


def test_large_jpeg_decodes_in_draft_mode_with_original_size():
    info, arr = images.prepare(encode(photo((1600, 1200)), "JPEG"), 128)
    assert (info.width, info.height, info.format) == (1600, 1200, "JPEG")
    assert info.extension == "jpg" and arr.shape == (128, 128, 3)
