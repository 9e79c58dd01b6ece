"""Render DICOM files with pydicom as a viewer shows them; only allow-listed header values leave here.

Compressed pixel data is decoded by pydicom's plugins (pylibjpeg: JPEG baseline/lossless, JPEG-LS,
JPEG 2000, RLE). Error details are written here, never copied from pydicom, whose messages can
quote header values.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import numpy as np
import pydicom
import pydicom.config
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import (apply_color_lut, apply_modality_lut, apply_voi, apply_windowing,
                            pixel_array)
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medcrawl.extract.frames import MedicalFileError, Rendered, to_png, window

# The only header values that may reach a row, a log line or the web page.
ALLOWED_TAGS = ("Modality", "BodyPartExamined", "Rows", "Columns", "NumberOfFrames",
                "PhotometricInterpretation", "BitsAllocated", "TransferSyntaxUID")
# Modality tag -> the project's modality classes (tags not listed are left to the model).
MODALITIES = {
    **dict.fromkeys(("CR", "DX", "MG", "RF", "XA", "IO", "PX", "RG", "DF"), "xray"),
    "CT": "ct", "MR": "mri", "US": "ultrasound", "IVUS": "ultrasound",
    "NM": "nuclear", "PT": "nuclear", "SM": "microscopy", "GM": "microscopy",
    "ES": "endoscopy", "OP": "fundus", "OPT": "oct", "IVOCT": "oct", "DMS": "dermoscopy",
}
# Objects that are DICOM but hold no picture: structure sets, plans, reports, waveforms, ...
NON_IMAGE_MODALITIES = frozenset({"RTSTRUCT", "RTPLAN", "RTRECORD", "SR", "KO", "PR", "ECG", "HD",
                                  "AU", "EPS", "RESP", "DOC", "REG", "FID", "PLAN", "RWV"})
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
CONTENT_TYPES = ("application/dicom",)
EXTENSIONS = (".dcm", ".dicom")
FRAME_CHOICES = "middle, all or a number of frames"

IDENTIFYING_KEYWORDS = ("SOPClassUID", "Modality", "Rows", "StudyInstanceUID")
NUMERIC_TAGS = ("Rows", "Columns", "NumberOfFrames", "BitsAllocated")
IMAGE_KEYWORDS = ("Rows", "Columns", "BitsAllocated")
# Files without file meta: the transfer syntax their encoding implies, by (implicit VR, little endian).
ENCODINGS = {(True, True): ImplicitVRLittleEndian, (False, True): ExplicitVRLittleEndian,
             (False, False): ExplicitVRBigEndian}

# Quiet, lenient reading: pydicom's validation messages can quote header values (patient data),
# and the reasons medcrawl gives are specific enough.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
logging.getLogger("pydicom").setLevel(logging.CRITICAL)
warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")


def looks_like_dicom(data: bytes, name: str = "", content_type: str = "") -> bool:
    """DICM preamble, application/dicom, a .dcm/.dicom name, or a bare data set with no extension."""
    if data[128:132] == b"DICM" or content_type.split(";")[0].strip().lower() in CONTENT_TYPES:
        return True
    base = PurePosixPath(urlsplit(name).path if "://" in name else name.replace("\\", "/")).name
    if base.lower().endswith(EXTENSIONS):
        return True
    return "." not in base and _bare_data_set(data)


def _bare_data_set(data: bytes) -> bool:
    """Starts like a data set written without preamble: a group 0002 or 0008 tag, either endian."""
    head = data[:4]
    return head[:2] in (b"\x02\x00", b"\x08\x00") and head[3] == 0 \
        or head[:2] in (b"\x00\x02", b"\x00\x08") and head[2] == 0


def read_dicom(data: bytes, frames: str = "middle", max_pixels: int | None = None) -> Rendered:
    """The chosen frames of a DICOM file rendered to PNG, its modality class and safe facts."""
    try:
        return _read(parse(data), frames, max_pixels)
    except MedicalFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - values are decoded lazily: any access can fail
        raise MedicalFileError("dicom_malformed", f"unreadable element ({type(exc).__name__})") \
            from None


def _read(ds: Dataset, frames: str, max_pixels: int | None) -> Rendered:
    facts = header_facts(ds)
    check_image(ds)
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if max_pixels and rows * columns > max_pixels:
        raise MedicalFileError("decompression_bomb",
                               f"{columns}x{rows} exceeds the {max_pixels} pixel limit")
    total = frame_count(ds)
    rendered = [to_png(render_frame(ds, index), str(index + 1)) for index in frame_indices(total, frames)]
    return Rendered("dicom", rendered, MODALITIES.get(facts.get("Modality", ""), ""), facts)


def parse(data: bytes) -> Dataset:
    """The dataset in the bytes (pixel data still encoded), or a MedicalFileError."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except InvalidDicomError:
        raise MedicalFileError("dicom_malformed", "not a readable DICOM data set") from None
    except (EOFError, struct.error, OSError):
        raise MedicalFileError("dicom_truncated", "the file ends inside a data element") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for broken files
        raise MedicalFileError("dicom_malformed", type(exc).__name__) from None
    if len(ds) == 0:    # pydicom drops the whole level when it meets the end of the file early
        raise MedicalFileError(*(("dicom_truncated", "the file ends inside its data set")
                                 if ds.file_meta else ("dicom_malformed", "no data elements")))
    if not ds.file_meta.get("TransferSyntaxUID") and ds.original_encoding in ENCODINGS:
        ds.file_meta.TransferSyntaxUID = ENCODINGS[ds.original_encoding]
    return ds


def header_facts(ds: Dataset) -> dict:
    """The allow-listed header values present in the file, as plain str/int."""
    facts = {}
    meta = ds.file_meta
    for keyword in ALLOWED_TAGS:
        value = (meta if keyword == "TransferSyntaxUID" else ds).get(keyword)
        if value not in (None, ""):
            facts[keyword] = int(value) if keyword in NUMERIC_TAGS else str(value).strip().upper()
    return facts


def check_image(ds: Dataset) -> None:
    """Raise the specific reason a data set holds no picture to render."""
    meta = ds.file_meta
    if meta.get("MediaStorageSOPClassUID") == MEDIA_DIRECTORY or "DirectoryRecordSequence" in ds:
        raise MedicalFileError("dicomdir", "a DICOMDIR index of other files, not an image")
    if "MediaStorageSOPClassUID" not in meta and not any(k in ds for k in IDENTIFYING_KEYWORDS):
        raise MedicalFileError("dicom_malformed", "neither file meta nor a DICOM object's attributes")
    if any(keyword in ds for keyword in PIXEL_KEYWORDS):
        missing = [keyword for keyword in IMAGE_KEYWORDS if keyword not in ds]
        if missing:
            raise MedicalFileError("dicom_malformed", f"pixel data without {', '.join(missing)}")
        return
    modality = str(ds.get("Modality") or "").upper()
    if modality in NON_IMAGE_MODALITIES:
        raise MedicalFileError("dicom_not_an_image", f"a {modality} object has no pixel data")
    if _is_image_object(ds):
        raise MedicalFileError("dicom_no_pixel_data", "an image object without pixel data "
                               "(cut short?)")
    raise MedicalFileError("dicom_no_pixel_data", "the data set has no pixel data element")


def _is_image_object(ds: Dataset) -> bool:
    """An image's SOP class or image attributes: pixel data belongs there (if absent: cut short)."""
    sop_class = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    if sop_class is not None and "Image Storage" in pydicom.uid.UID(str(sop_class)).name:
        return True
    return all(keyword in ds for keyword in IMAGE_KEYWORDS[:2])


def frame_count(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def frame_indices(total: int, frames: str | int = "middle") -> list[int]:
    """0-based frames to render: the middle one, all, or N spread evenly (N=1: the middle)."""
    choice = str(frames).strip().lower()
    if choice == "all":
        return list(range(total))
    wanted = 1 if choice == "middle" else parse_frames(choice)
    if wanted >= total:
        return list(range(total))
    return [int((k + 0.5) * total / wanted) for k in range(wanted)]


def parse_frames(value: str | int) -> int:
    """A frame count from the setting, or ValueError naming the choices."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"MEDCRAWL_DICOM_FRAMES must be {FRAME_CHOICES}, not {value!r}") from None
    if number < 1:
        raise ValueError(f"MEDCRAWL_DICOM_FRAMES must be {FRAME_CHOICES} (>= 1), not {number}")
    return number


def render_frame(ds: Dataset, index: int) -> np.ndarray:
    """Decode frame ``index`` (0-based) and render it as uint8; decoding failures get specific reasons."""
    try:
        pixels = pixel_array(ds, index=index)
    except NotImplementedError:
        syntax = ds.file_meta.get("TransferSyntaxUID")
        name = syntax.name if syntax is not None else "unknown"
        raise MedicalFileError("dicom_unsupported_transfer_syntax",
                               f"no decoder for {name}") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many types for broken streams
        raise _decode_error(exc) from None
    return render(pixels, ds)


def _decode_error(exc: Exception) -> MedicalFileError:
    text = str(exc).lower()
    if "less than expected" in text or "insufficient" in text or "too short" in text \
            or isinstance(exc, (EOFError, struct.error)):
        return MedicalFileError("dicom_truncated", "the pixel data is shorter than its size says")
    return MedicalFileError("dicom_undecodable", f"the pixel data cannot be decoded "
                            f"({type(exc).__name__})")


def render(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    """One decoded frame as uint8 gray or RGB, the way a viewer displays it."""
    interpretation = str(ds.get("PhotometricInterpretation", "")).upper()
    if interpretation == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        return window(rgb, 0, np.iinfo(rgb.dtype).max)
    if pixels.ndim == 3:         # RGB (YBR already converted to RGB by pixel_array)
        return window(pixels, 0, 2 ** int(ds.get("BitsStored") or 8) - 1)
    gray = _voi(apply_modality_lut(pixels, ds), ds)
    return 255 - gray if interpretation == "MONOCHROME1" else gray


def _voi(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """The file's VOI LUT, else its window, else a percentile window; as uint8."""
    try:
        if _has_voi_lut(ds):
            lut = ds.VOILUTSequence[0]
            first, entries = int(lut.LUTDescriptor[1]), int(lut.LUTDescriptor[0] or 2 ** 16)
            domain = apply_voi(np.arange(first, first + entries), ds)
            return window(apply_voi(np.rint(values).astype(np.int64), ds),
                          float(domain.min()), float(domain.max()))
        if "WindowCenter" in ds and "WindowWidth" in ds:
            low, high = apply_windowing(np.array([-np.inf, np.inf]), ds)
            return window(apply_windowing(values, ds), low, high)
    except (ValueError, TypeError, IndexError, AttributeError, NotImplementedError):
        pass  # an unusable VOI module: the robust window below still shows the image
    return window(values)


def _has_voi_lut(ds: Dataset) -> bool:
    seq = ds.get("VOILUTSequence")
    return bool(seq) and "LUTDescriptor" in seq[0] and "LUTData" in seq[0]
