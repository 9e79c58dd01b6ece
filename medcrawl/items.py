"""The row schema: one ImageItem per image occurrence, shared by the crawl feeds and the CLI."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# Feed columns, in order. FEED_EXPORT_FIELDS uses this, so internal fields never reach a feed.
ROW_FIELDS = (
    "image_url", "source_url", "source_type", "pdf_page", "frame", "panel", "path", "sha256",
    "width", "height", "format", "label", "label_source", "medical_probability", "confidence",
    "modality", "modality_confidence", "model_modality", "model", "status", "error",
    "compound", "duplicate_of", "alt", "title", "caption", "page_title", "license", "license_url",
)
# What labelling fills in: copied to every row with the same content (in a crawl and across runs).
VERDICT_FIELDS = ("width", "height", "format", "label", "label_source", "medical_probability",
                  "confidence", "modality", "modality_confidence", "model_modality", "model",
                  "status", "error", "compound")


@dataclass
class ImageItem:
    """One image seen at one place (a page or a PDF); ``body`` holds bytes already in hand."""

    image_url: str = ""
    source_url: str = ""
    source_type: str = "html"          # html | pdf | file | url
    pdf_page: int | None = None        # 1-based page number for PDF images
    frame: str = ""                    # DICOM frame number (1-based) or NIfTI "<plane>:<index>"
    panel: int | None = None           # 1..N when a compound figure was split into its panels
    path: str = ""                     # stored file, relative to the store root
    sha256: str = ""                   # of the stored original bytes
    width: int | None = None
    height: int | None = None
    format: str = ""
    label: str = ""                    # medical | non-medical
    label_source: str = ""             # model | dicom | nifti: what decided the label
    medical_probability: float | None = None
    confidence: float | None = None
    modality: str = ""                 # medical rows: xray, ct, mri, ... or other; else empty
    modality_confidence: float | None = None
    model_modality: str = ""           # the model's modality when a DICOM tag gave another
    model: str = ""
    status: str = ""                   # ok | skipped | error
    error: str = ""                    # specific reason when status is not ok
    compound: bool | None = None       # a multi-panel figure (gutters / a grid of panels)
    duplicate_of: str = ""             # sha256 of the kept image of this row's near-duplicate group
    alt: str = ""                      # the <img> alt attribute
    title: str = ""                    # the <img> title attribute
    caption: str = ""                  # figcaption / described-by / nearby caption; a PDF figure's caption
    page_title: str = ""               # the page's <title> or the PDF's title
    license: str = ""                  # SPDX identifier the page or PDF declares ('' when none)
    license_url: str = ""              # the licence link as declared
    body: bytes | None = field(default=None, repr=False)   # internal: never exported
    preview: Any = field(default=None, repr=False)   # internal: the web page's thumbnail (a Pillow image)
    original: bytes | None = field(default=None, repr=False)   # internal: a DICOM/NIfTI file's own bytes, stored only when asked
    panel_boxes: tuple = field(default=(), repr=False)   # internal: a compound figure's panels (model/panels.py)

    def __post_init__(self) -> None:
        self.image_url, self.source_url = without_credentials(self.image_url), without_credentials(self.source_url)

    def fail(self, reason: str, status: str = "error") -> "ImageItem":
        """Mark this row as skipped or failed with a specific reason (the first reason wins)."""
        if self.status not in ("error", "skipped"):
            self.status, self.error = status, reason
        return self

    def content_sha256(self) -> str:
        """The sha256 of the bytes in hand, computed when not known yet ('' without either)."""
        if self.body is not None and not self.sha256:
            self.sha256 = hashlib.sha256(self.body).hexdigest()
        return self.sha256

    def verdict(self) -> dict:
        """The labelling result (VERDICT_FIELDS), to copy onto rows with the same content."""
        return {name: getattr(self, name) for name in VERDICT_FIELDS}

    def apply_verdict(self, verdict: dict) -> "ImageItem":
        """Take another row's labelling result."""
        for name in VERDICT_FIELDS:
            setattr(self, name, verdict.get(name))
        return self

    def row(self) -> dict:
        """The exported columns only, in ROW_FIELDS order."""
        return {name: getattr(self, name) for name in ROW_FIELDS}


def without_credentials(url: str) -> str:
    """An http(s) URL without its ``user:password@`` part, so no output column carries a password."""
    if "@" not in url or not url[:8].lower().startswith(("http://", "https://")):
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


assert set(ROW_FIELDS) | set(VERDICT_FIELDS) <= {f.name for f in fields(ImageItem)}
