"""Render NIfTI volumes with nibabel: the middle axial, coronal and sagittal slices of the volume."""

from __future__ import annotations

import zlib

import nibabel as nib
import numpy as np

from medcrawl.extract.frames import (Frame, MedicalFileError, Rendered, percentile_window, to_png,
                                     window)

EXTENSIONS = (".nii", ".nii.gz")
GZIP_MAGIC = b"\x1f\x8b"
# Header size -> image class (NIfTI-1 and NIfTI-2 single files), either byte order.
HEADER_SIZES = {348: nib.Nifti1Image, 540: nib.Nifti2Image}
MAX_VOLUME_BYTES = 2 * 1024 ** 3   # decompressed size limit of a .nii.gz
# Plane -> (axis sliced, the axes left as (columns, rows)) in RAS+ orientation.
PLANES = (("axial", 2, (0, 1)), ("coronal", 1, (0, 2)), ("sagittal", 0, (1, 2)))
MAX_UPSCALE = 4.0                  # a thin plane is enlarged at most this much to reach the minimum size


def looks_like_nifti(data: bytes, name: str = "") -> bool:
    """A .nii/.nii.gz name, or a NIfTI-1/2 header (inside gzip too)."""
    if name.lower().split("?")[0].endswith(EXTENSIONS):
        return True
    try:
        head = _gunzip(data[:4096], 600, partial=True) if data[:2] == GZIP_MAGIC else data[:600]
    except MedicalFileError:
        return False
    return _image_class(head) is not None


def read_nifti(data: bytes, max_bytes: int = MAX_VOLUME_BYTES, min_size: int = 0) -> Rendered:
    """The middle axial, coronal and sagittal slices ("axial:N": index in RAS+ orientation).

    Each plane keeps its voxels' true aspect; a thin one (a slab of few slices) is enlarged so its
    shorter side reaches ``min_size`` when its longer side does.
    """
    raw = _gunzip(data, max_bytes) if data[:2] == GZIP_MAGIC else data
    cls = _image_class(raw)
    if cls is None:
        raise MedicalFileError("nifti_malformed", "no NIfTI-1 or NIfTI-2 header")
    try:
        img = nib.as_closest_canonical(cls.from_bytes(raw))
        volume = _first_volume(img)
    except MedicalFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for broken files
        text = str(exc).lower()
        reason = "nifti_truncated" if "expected" in text or "short" in text else "nifti_malformed"
        raise MedicalFileError(reason, type(exc).__name__) from None
    return Rendered("nifti", _slices(volume, img.header.get_zooms()[:3], min_size), "", {
        "shape": "x".join(str(n) for n in volume.shape)})


def _image_class(raw: bytes):
    for order in ("<", ">"):
        size = int(np.frombuffer(raw[:4], dtype=f"{order}i4")[0]) if len(raw) >= 4 else 0
        if size in HEADER_SIZES:
            cls = HEADER_SIZES[size]
            magic = raw[344:348] if size == 348 else raw[4:8]
            return cls if magic[:3] in (b"n+1", b"n+2") else None
    return None


def _gunzip(data: bytes, limit: int, partial: bool = False) -> bytes:
    """Decompressed gzip bytes, at most ``limit`` (over it: nifti_too_large unless partial)."""
    inflate = zlib.decompressobj(wbits=31)
    try:
        out = inflate.decompress(data, limit)
    except zlib.error:
        raise MedicalFileError("nifti_malformed", "corrupt gzip stream") from None
    if partial:
        return out
    if inflate.unconsumed_tail:
        raise MedicalFileError("nifti_too_large", f"over {limit} bytes uncompressed")
    if not inflate.eof:
        raise MedicalFileError("nifti_truncated", "the gzip stream ends early")
    return out


def _first_volume(img) -> np.ndarray:
    """The image's first 3-D volume as float32 (scaled by the header's slope and intercept)."""
    if len(img.shape) < 3 or min(img.shape[:3]) < 1:
        raise MedicalFileError("nifti_not_a_volume", f"{len(img.shape)}-D image")
    if img.get_data_dtype().fields:
        raise MedicalFileError("nifti_unsupported_datatype", "structured (RGB) voxels")
    index = (slice(None),) * 3 + (0,) * (len(img.shape) - 3)
    volume = np.asarray(img.dataobj[index])
    return np.abs(volume).astype(np.float32) if np.iscomplexobj(volume) \
        else volume.astype(np.float32)


def _slices(volume: np.ndarray, zooms: tuple, min_size: int = 0) -> list[Frame]:
    """The middle slice of each plane with at least 2x2 voxels, windowed on the whole volume."""
    low, high = percentile_window(volume)
    frames = []
    for plane, axis, (col_axis, row_axis) in PLANES:
        if volume.shape[col_axis] < 2 or volume.shape[row_axis] < 2:
            continue
        index = volume.shape[axis] // 2
        pixels = np.rot90(window(np.take(volume, index, axis=axis), low, high))
        size = _physical_size(pixels.shape, zooms[col_axis], zooms[row_axis])
        frames.append(to_png(pixels, f"{plane}:{index}", _reach(size or pixels.shape[::-1], min_size)))
    if not frames:
        raise MedicalFileError("nifti_not_a_volume", "no plane has 2x2 voxels")
    return frames


def _physical_size(shape: tuple, col_mm: float, row_mm: float) -> tuple[int, int] | None:
    """(width, height) that gives the voxels their true aspect, or None to keep the size."""
    if not (col_mm > 0 and row_mm > 0) or abs(col_mm - row_mm) < 1e-3:
        return None
    unit = min(col_mm, row_mm)
    return round(shape[1] * col_mm / unit), round(shape[0] * row_mm / unit)


def _reach(size: tuple[int, int], min_size: int) -> tuple[int, int]:
    """(width, height) scaled, aspect kept, so the shorter side reaches ``min_size`` when the longer
    side does (at most MAX_UPSCALE times); unchanged otherwise."""
    short, long = min(size), max(size)
    if short >= min_size or long < min_size or short * MAX_UPSCALE < min_size:
        return size
    scale = min_size / short
    return max(min_size, round(size[0] * scale)), max(min_size, round(size[1] * scale))
