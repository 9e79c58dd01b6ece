"""Decode, validate and prepare image bytes: the one place that turns bytes into model input."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from medcrawl.model.panels import find_panels

# Pillow's own decompression-bomb limit (about 89 Mpx) is enforced as an error, not a warning.
DEFAULT_MAX_PIXELS = cast(int, Image.MAX_IMAGE_PIXELS)

# The image formats medcrawl knows, in one place: Pillow format -> file extension, the other
# suffixes image files and URLs go by, and the magic bytes the store recognises content by.
EXTENSIONS = {
    "JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp",
    "TIFF": "tif", "MPO": "jpg", "ICO": "ico", "PPM": "ppm", "JPEG2000": "jp2",
    "DICOM": "png", "NIFTI": "png",     # rows of DICOM/NIfTI files carry their frames as PNG
}
IMAGE_SUFFIXES = frozenset({f".{ext}" for ext in EXTENSIONS.values()} | {
    ".jpeg", ".jpe", ".jfif", ".tiff", ".svg", ".avif", ".j2k"})
MAGIC = (
    (b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
    (b"II*\x00", "tif"), (b"MM\x00*", "tif"), (b"\x00\x00\x01\x00", "ico"),
    (b"\x00\x00\x00\x0cjP  \r\n", "jp2"), (b"\xff\x4f\xff\x51", "j2k"),
)


class ImageError(Exception):
    """An image that cannot be used, with a short machine-readable reason."""

    def __init__(self, reason: str, detail: str = "", status: str = "error",
                 size: tuple[int, int] | None = None):
        self.reason, self.detail, self.status, self.size = reason, detail, status, size
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class ImageInfo:
    """What a decoded image is, as stored (before any conversion)."""

    width: int
    height: int
    format: str
    mode: str
    frames: int = 1
    preview: Any = field(default=None, compare=False, repr=False)   # prepare(preview=N) only
    panels: tuple = field(default=(), compare=False, repr=False)    # prepare(panels=True) only: boxes

    @property
    def extension(self) -> str:
        return extension_for(self.format)


def extension_for(fmt: str | None) -> str:
    """File extension (without dot) for a Pillow format name."""
    return EXTENSIONS.get((fmt or "").upper(), (fmt or "bin").lower())


def content_extension(data: bytes) -> str | None:
    """Extension of an image format recognised by its magic bytes, else None (not stored)."""
    for magic, ext in MAGIC:
        if data.startswith(magic):
            return ext
    if data[:2] == b"BM" and data[6:10] == b"\0\0\0\0":
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "avif"
    return "svg" if sniff(data) == "svg" else None


def sniff(data: bytes) -> str | None:
    """Cheap content check for things Pillow must not be asked to decode: SVG, PDF, HTML."""
    head = data[:512].lstrip().lower()
    if head.startswith(b"%pdf"):
        return "pdf"
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        return "svg"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "html"
    return None


def open_image(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS, draft_size: int | None = None,
               reduce_to: int | None = None):
    """Decode bytes into a Pillow image and its ImageInfo, or raise ImageError.

    ``draft_size`` lets JPEG decode at a reduced scale (at least that many pixels a side): the
    stream is still read to the end, so truncation is still caught. ``reduce_to`` shrinks other
    formats right after decoding (by a whole factor, the shorter side staying at least twice
    that), so later conversions work on the small copy. Full-size decoding waits for room in
    the shared pixel budget (DECODE_BUDGET), so threads decoding big images at once cannot add up.
    """
    if not data:
        raise ImageError("empty", "zero-byte content")
    kind = sniff(data)
    if kind == "svg":
        raise ImageError("svg_not_supported", "SVG vector images are not rasterized", status="skipped")
    if kind in ("pdf", "html"):
        raise ImageError("not_an_image", f"content is {kind.upper()}")
    with _BOMB_WARNINGS_AS_ERRORS, _decode_errors():
        img: Image.Image = Image.open(io.BytesIO(data))
        info = ImageInfo(img.width, img.height, img.format or "unknown", img.mode,
                         getattr(img, "n_frames", 1))
        _check_pixels(info, max_pixels)
        if draft_size and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        with DECODE_BUDGET.hold(img.width * img.height):
            img.load()
            if reduce_to:
                img = reduced(img, reduce_to)
    return img, info


@contextmanager
def _decode_errors() -> Iterator[None]:
    """Pillow's exceptions while identifying or decoding -> ImageError with a specific reason."""
    try:
        yield
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("decompression_bomb", str(exc)) from None
    except UnidentifiedImageError:
        raise ImageError("not_an_image", "content is not a recognised image format") from None
    except OSError as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "undecodable"
        raise ImageError(reason, str(exc)) from None
    except (ValueError, SyntaxError, EOFError, TypeError, IndexError) as exc:
        raise ImageError("undecodable", f"{type(exc).__name__}: {exc}") from None


def reduced(img: Image.Image, size: int) -> Image.Image:
    """The image shrunk by the largest whole factor that keeps its shorter side >= 2 * size."""
    factor = min(img.size) // (2 * size)
    if factor < 2:
        return img
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    try:
        return img.reduce(factor)                         # box average, where the mode allows
    except ValueError:                                    # palette, 1-bit, 16-bit: nearest pixels
        return img.resize((img.width // factor, img.height // factor), Image.Resampling.NEAREST)


class PixelBudget:
    """At most ``limit`` pixels decoded at full size at once, across threads (a bigger image goes alone)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._room = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._room:
            self._room.wait_for(lambda: self.used == 0 or self.used + pixels <= self.limit)
            self.used += pixels
        try:
            yield
        finally:
            with self._room:
                self.used -= pixels
                self._room.notify_all()


DECODE_BUDGET = PixelBudget(DEFAULT_MAX_PIXELS)


def release_memory() -> None:
    """Hand freed decode buffers back to the system (glibc keeps them in its arenas otherwise)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc():
    """glibc, with big blocks (Pillow allocates images in 16 MB blocks) always mapped on their own.

    glibc otherwise raises its mmap threshold after the first such block is freed, and later
    blocks stay in per-thread arenas: each decoding thread would keep a full image's worth.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim"):
        return None
    libc.mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024)
    return libc


M_MMAP_THRESHOLD = -3
_LIBC = _libc()


class _BombWarningsAsErrors:
    """``DecompressionBombWarning`` raised as an error while any thread is decoding.

    ``warnings.catch_warnings`` swaps process-wide state and is not thread-safe: two threads
    decoding at once could restore each other's filters. One shared context, entered by the
    first decoding thread and left by the last, keeps the filter in place for all of them.
    """

    def __init__(self):
        self._lock, self._users, self._context = threading.Lock(), 0, None

    def __enter__(self) -> None:
        with self._lock:
            if self._users == 0:
                self._context = warnings.catch_warnings()
                self._context.__enter__()
                warnings.simplefilter("error", Image.DecompressionBombWarning)
            self._users += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._context.__exit__(None, None, None)
                self._context = None


_BOMB_WARNINGS_AS_ERRORS = _BombWarningsAsErrors()


def _check_pixels(info: ImageInfo, max_pixels: int | None) -> None:
    if max_pixels and info.width * info.height > max_pixels:
        raise ImageError("decompression_bomb",
                         f"{info.width}x{info.height} exceeds the {max_pixels} pixel limit")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB: alpha onto white, 16-bit/float rescaled, CMYK converted."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = _rescale_to_l(img)
    img = on_white(img)
    return img if img.mode == "RGB" else img.convert("RGB")


def on_white(img: Image.Image) -> Image.Image:
    """Palette and transparent images composited onto white as RGB; other modes unchanged."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img


def _rescale_to_l(img: Image.Image) -> Image.Image:
    """Stretch a 16-bit or float image's own value range onto 0..255."""
    arr = np.asarray(img, dtype=np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return Image.fromarray(scaled.astype(np.uint8), mode="L")


def resize_square(img: Image.Image, size: int) -> np.ndarray:
    """Squash an RGB image to size x size and return it as uint8 HxWx3."""
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(img, dtype=np.uint8)


def prepare(data: bytes, size: int, min_size: int = 0, max_pixels: int | None = DEFAULT_MAX_PIXELS,
            preview: int = 0, panels: bool = False) -> tuple[ImageInfo, np.ndarray]:
    """Bytes -> (ImageInfo, uint8 model input); raises ImageError, with ``too_small`` as skipped.

    Decoded once, at reduced size where the format allows; ``preview`` > 0 also keeps an RGB
    copy at most that big as ``ImageInfo.preview`` (the web page's thumbnail, no second decode);
    ``panels`` finds a compound figure's panels on the same copy (``ImageInfo.panels``).
    """
    side = max(size, preview)
    img, info = open_image(data, max_pixels=max_pixels, draft_size=side, reduce_to=side)
    if min(info.width, info.height) < min_size:
        raise ImageError("too_small", f"{info.width}x{info.height} is below {min_size}x{min_size}",
                         status="skipped", size=(info.width, info.height))
    rgb = to_rgb(img)
    if preview:
        thumb = rgb.copy()
        thumb.thumbnail((preview, preview))
        info = replace(info, preview=thumb)
    if panels:
        info = replace(info, panels=find_panels(rgb, (info.width, info.height)))
    return info, resize_square(rgb, size)


ImageFile.LOAD_TRUNCATED_IMAGES = False
