"""Real test inputs for the one-off classifier tests: a photo, a brain MRI, PDFs, a mixed folder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pymupdf
from matplotlib import cbook
from PIL import Image


def photo_jpeg() -> bytes:
    """Grace Hopper's portrait (512x600 JPEG) from matplotlib's sample data: non-medical."""
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return fh.read()


def mri_png() -> bytes:
    """A sagittal brain MRI slice (256x256) from matplotlib's sample data: medical."""
    with cbook.get_sample_data("s1045.ima.gz") as fh:
        raw = np.frombuffer(fh.read(), ">u2").reshape(256, 256).astype(np.float32)
    scaled = np.clip(raw / np.percentile(raw, 99.5), 0, 1) * 255
    return png(Image.fromarray(scaled.astype(np.uint8)))


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def make_pdf(images: list[bytes], password: str | None = None) -> bytes:
    """A PDF with one embedded image per page (optionally needing a password to open)."""
    doc = pymupdf.open()
    for data in images:
        page = doc.new_page(width=595, height=842)
        page.insert_text((72, 60), "Figure", fontsize=14)
        page.insert_image(pymupdf.Rect(72, 80, 523, 600), stream=data)
    if password:
        out = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password,
                          owner_pw=password + "-owner")
    else:
        out = doc.tobytes()
    doc.close()
    return out


# name -> expected (status, label or error) for every file a directory walk must report
FOLDER_EXPECTED = {
    "photo.jpg": ("ok", "non-medical"),
    "scans/mri.png": ("ok", "medical"),
    "scans/old/mri-copy.png": ("ok", "medical"),          # same bytes: exported once
    "icon.png": ("skipped", "too_small"),
    "drawing.svg": ("skipped", "svg_not_supported"),
    "broken.jpg": ("error", "truncated"),
    "fake.png": ("error", "not_an_image"),
    "empty.gif": ("error", "empty"),
    "notes.txt": ("skipped", "unsupported_type"),         # reported, not read as an image
}


def make_folder(root: Path) -> Path:
    """A folder of mixed images, bad files, and files a directory walk must ignore."""
    photo, mri = photo_jpeg(), mri_png()
    files = {
        "photo.jpg": photo,
        "scans/mri.png": mri,
        "scans/old/mri-copy.png": mri,
        "icon.png": png(Image.new("RGB", (16, 16), "red")),
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "broken.jpg": photo[: len(photo) // 2],
        "fake.png": b"this is not an image at all\n" * 10,
        "empty.gif": b"",
        "notes.txt": b"not an image: a skipped row with reason unsupported_type",
        ".hidden/secret.png": mri,
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root
