"""Medical file formats: recognise DICOM and NIfTI bytes and render their images as PNG frames."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag

from medcrawl.extract import dicom, nifti
from medcrawl.extract.frames import Frame, MedicalFileError, Rendered
from medcrawl.items import ImageItem

__all__ = ["EXTENSIONS", "Frame", "MedicalFileError", "MedicalOptions", "Rendered",
           "is_medical_name", "medical_format", "medical_rows", "render_medical"]
logger = logging.getLogger(__name__)

# File names a folder walk or a page link treats as medical files.
EXTENSIONS = dicom.EXTENSIONS + nifti.EXTENSIONS


@dataclass(frozen=True)
class MedicalOptions:
    """How medical files are rendered: which DICOM frames, and the pixel limit per frame."""

    dicom_frames: str = "middle"      # middle | all | N (N frames spread evenly)
    max_pixels: int | None = None
    keep_original: bool = False       # rows also carry the file's own bytes (for the store)
    min_size: int = 0                 # thin NIfTI planes are enlarged to reach it (the rows' minimum size)

    def __post_init__(self):
        if str(self.dicom_frames).strip().lower() not in ("middle", "all"):
            dicom.parse_frames(self.dicom_frames)


def medical_format(data: bytes, name: str = "", content_type: str = "") -> str | None:
    """'nifti', 'dicom', or None for anything else (checked by name, content type and bytes)."""
    if nifti.looks_like_nifti(data, name):
        return "nifti"
    if dicom.looks_like_dicom(data, name, content_type):
        return "dicom"
    return None


def is_medical_name(name: str) -> bool:
    """True for a .dcm/.dicom/.nii/.nii.gz file name or URL path."""
    return name.lower().split("?")[0].split("#")[0].endswith(EXTENSIONS)


def render_medical(kind: str, data: bytes, options: MedicalOptions = MedicalOptions()) -> Rendered:
    """Render a file ``medical_format`` recognised; raises MedicalFileError with a reason."""
    if kind == "nifti":
        return nifti.read_nifti(data, min_size=options.min_size)
    return dicom.read_dicom(data, options.dicom_frames, options.max_pixels)


def medical_rows(kind: str, data: bytes, url: str, source_url: str = "", source_type: str = "url",
                 options: MedicalOptions = MedicalOptions(), pdf_page: int | None = None,
                 ) -> list[ImageItem]:
    """One row per rendered frame (PNG bytes in hand, ``frame`` set), or one error row.

    ``image_url`` is ``<url>#frame=<frame>``, so each frame is a row of its own everywhere.
    """
    url = urldefrag(url)[0]
    base: dict[str, Any] = {"source_url": source_url or url, "source_type": source_type, "pdf_page": pdf_page,
            "format": kind}
    try:
        rendered = render_medical(kind, data, options)
    except MedicalFileError as exc:
        logger.info("%s %s not rendered: %s", kind.upper(), url, exc)
        return [ImageItem(image_url=url, **base).fail(exc.reason)]
    except Exception as exc:  # noqa: BLE001 - one bad file is one error row; no message: it may quote the file
        logger.warning("%s %s failed: %s", kind.upper(), url, type(exc).__name__)
        return [ImageItem(image_url=url, **base).fail(f"{kind}_failed")]
    logger.debug("%s %s: %d frame(s), %s", kind.upper(), url, len(rendered.frames), rendered.facts)
    original = data if options.keep_original else None
    return [ImageItem(image_url=f"{url}#frame={frame.label}", frame=frame.label, width=frame.width,
                      height=frame.height, modality=rendered.modality, body=frame.png,
                      label_source=label_source(rendered), original=original, **base)
            for frame in rendered.frames]


def label_source(rendered: Rendered) -> str:
    """'nifti' for a NIfTI volume and 'dicom' for a DICOM image whose Modality tag names an imaging
    modality: such frames are medical by their format. '' leaves the label to the model."""
    if rendered.format == "nifti" or (rendered.format == "dicom" and rendered.modality):
        return rendered.format
    return ""


def original_extension(kind: str, data: bytes) -> str:
    """The file extension a DICOM or NIfTI file is stored under as it came."""
    if kind == "nifti":
        return "nii.gz" if data[:2] == nifti.GZIP_MAGIC else "nii"
    return "dcm"
