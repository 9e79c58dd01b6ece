"""One file's bytes to the image stored for training, as the first pack's README describes.

Decode (``dicom``: rendered by the product's DICOM renderer), take the frame or part the source's
``transform`` names, check ``min_side`` on that part at full size, bring the pixels to 8 bits
(16-bit and float images percentile-windowed like the product's DICOM frames; transparency onto
white; grayscale stays one channel), and downscale so the longer side is ``MAX_SIDE`` (Pillow
LANCZOS, JPEG quality 90). A JPEG or PNG already small enough, untouched, keeps its bytes; other
small images are stored as PNG.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageStat

from medcrawl.extract.frames import window
from medcrawl.model.images import on_white

MAX_SIDE = 256
JPEG_QUALITY = 90
BLANK_STDDEV = 2.0            # grey levels: below this an image shows nothing
DRAFT_SIDE = 2 * MAX_SIDE     # large JPEGs are decoded at a reduced scale at least this big
KEEP_FORMATS = {"JPEG": "jpg", "PNG": "png"}
KEEP_MODES = ("L", "RGB", "P", "1")
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class Skip(Exception):
    """A file that gives no training image, with the reason (``undecodable``, ``too_small``, ``blank``)."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Stored:
    """The bytes to store, their extension and size, and the image they hold (for fingerprints)."""

    data: bytes
    ext: str
    width: int
    height: int
    image: Image.Image


def convert(data: bytes, transform: str | None = None, min_side: int = 1) -> Stored:
    """The stored form of one file's bytes, or Skip with the reason."""
    try:
        img, fmt, full = decode(data, transform)
        img = img.crop(crop_box(transform, *img.size)) if transform in CROPS else img
        full = crop_box(transform, *full)[2:] if transform in CROPS else full
        if min(full) < min_side:
            raise Skip("too_small", f"{full[0]}x{full[1]} is below {min_side} px")
        kept = fmt in KEEP_FORMATS and transform is None and max(img.size) <= MAX_SIDE \
            and img.mode in KEEP_MODES and "transparency" not in img.info
        img = eight_bit(img)
        if ImageStat.Stat(img.convert("L")).stddev[0] < BLANK_STDDEV:
            raise Skip("blank", "one flat colour")
        if kept:
            return Stored(data, KEEP_FORMATS[fmt], img.width, img.height, img)
        return encode(img)
    except Skip:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders raise many types for broken files
        raise Skip("undecodable", type(exc).__name__) from None


def decode(data: bytes, transform: str | None) -> tuple[Image.Image, str, tuple[int, int]]:
    """The decoded frame, its format and its full size (large JPEGs decode at a reduced scale)."""
    if transform == "dicom":
        from medcrawl.extract.dicom import read_dicom   # pydicom only where DICOM is read
        data = read_dicom(data, frames="middle").frames[0].png
    img = Image.open(io.BytesIO(data))
    fmt, full = img.format, img.size
    if transform == "middle-frame":
        img.seek(getattr(img, "n_frames", 1) // 2)
    elif fmt == "JPEG" and max(full) > 2 * DRAFT_SIDE:
        scale = DRAFT_SIDE / max(full)
        img.draft(img.mode, (math.ceil(full[0] * scale), math.ceil(full[1] * scale)))
    img.load()
    return img, fmt, full


def crop_box(transform: str | None, width: int, height: int) -> tuple[int, int, int, int]:
    if transform == "left-half":
        return 0, 0, width // 2, height
    if transform == "right-half":
        return width // 2, 0, width, height
    return 0, 0, min(width, height), height     # first-square: the leftmost square tile


CROPS = ("left-half", "right-half", "first-square")


def eight_bit(img: Image.Image) -> Image.Image:
    """L or RGB: wide values percentile-windowed, 1-bit and palettes expanded, alpha onto white."""
    if img.mode in WIDE_MODES:
        return Image.fromarray(window(np.asarray(img, dtype=np.float64)), mode="L")
    if img.mode == "1":
        return img.convert("L")
    img = on_white(img)
    return img if img.mode in ("L", "RGB") else img.convert("RGB")


def encode(img: Image.Image) -> Stored:
    """Downscaled to MAX_SIDE as JPEG q90, or (already small) lossless PNG."""
    out = io.BytesIO()
    if max(img.size) > MAX_SIDE:
        scale = MAX_SIDE / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
        img.save(out, format="JPEG", quality=JPEG_QUALITY)
        ext = "jpg"
    else:
        img.save(out, format="PNG")
        ext = "png"
    return Stored(out.getvalue(), ext, img.width, img.height, img)
