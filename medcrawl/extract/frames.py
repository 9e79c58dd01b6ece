"""What DICOM and NIfTI reading share: the rendered frame, its errors, windowing and PNG output."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

# Robust display window when the file gives none: these percentiles of the values map to 0..255,
# taken on at most about SAMPLE values (an even stride through larger images).
PERCENTILES = (0.5, 99.5)
SAMPLE = 1_000_000
# Fast PNG compression: frames are encoded once per file and level 6 costs 3x the time.
PNG_LEVEL = 1


@dataclass(frozen=True)
class Frame:
    """One rendered 2-D image: a DICOM frame ("3", 1-based) or a NIfTI slice ("axial:45")."""

    label: str
    png: bytes = field(repr=False)
    width: int
    height: int


@dataclass(frozen=True)
class Rendered:
    """The frames chosen from one file, the modality its header gives ('' if none) and safe facts."""

    format: str                 # dicom | nifti
    frames: list[Frame]
    modality: str = ""
    facts: dict = field(default_factory=dict)   # allow-listed header values only


class MedicalFileError(Exception):
    """A DICOM or NIfTI file that cannot be rendered, with a specific reason.

    ``detail`` is written by medcrawl, never copied from the file, so no header value leaks.
    """

    status = "error"

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def window(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Map ``low..high`` linearly onto uint8 0..255, clipping; default bounds: the percentiles."""
    values = np.asarray(values, dtype=np.float64)
    if low is None or high is None:
        low, high = percentile_window(values)
    if high <= low:
        return np.where(values > low, 255, 0).astype(np.uint8)
    scaled = (np.nan_to_num(values, nan=low) - low) * (255.0 / (high - low))
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


def percentile_window(values: np.ndarray) -> tuple[float, float]:
    """The PERCENTILES of the finite values (of a strided sample of large arrays); (0, 0) if none."""
    flat = values.ravel()
    flat = flat[:: max(1, flat.size // SAMPLE)]
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return 0.0, 0.0
    low, high = np.percentile(finite, PERCENTILES)
    return float(low), float(high)


def to_png(pixels: np.ndarray, label: str, size: tuple[int, int] | None = None) -> Frame:
    """A uint8 gray (H, W) or RGB (H, W, 3) array as a lossless PNG frame, resized if asked."""
    img = Image.fromarray(np.ascontiguousarray(pixels))
    if size and size != img.size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=PNG_LEVEL)
    return Frame(label, out.getvalue(), img.width, img.height)
