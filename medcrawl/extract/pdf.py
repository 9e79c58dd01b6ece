"""Pull every embedded image out of a PDF with PyMuPDF, as rows (shared by the crawl and the CLI).

PyMuPDF is not thread-safe: call ``extract_pdf_images`` / ``pdf_rows`` from one thread at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit

import pymupdf

from medcrawl.extract.pdftext import PdfText, document_text, page_captions
from medcrawl.items import ImageItem
from medcrawl.model.images import DEFAULT_MAX_PIXELS

# Compressed image streams kept as their original bytes when no mask or colour conversion is
# needed; every other image is decoded by MuPDF and written as a lossless PNG.
ORIGINAL_STREAMS = {"DCTDecode": "jpg", "JPXDecode": "jp2"}
PDF_CONTENT_TYPES = ("application/pdf", "application/x-pdf", "application/acrobat")
# Colour components by colour space name (others, e.g. ICCBased or Indexed, are counted as 4).
COMPONENTS = {"/DeviceGray": 1, "/CalGray": 1, "/DeviceRGB": 3, "/CalRGB": 3, "/Lab": 3,
              "/DeviceCMYK": 4}

logger = logging.getLogger(__name__)

pymupdf.TOOLS.mupdf_display_errors(False)
pymupdf.TOOLS.mupdf_display_warnings(False)


@dataclass
class PdfImage:
    """One distinct embedded image: its bytes and the first (1-based) page it sits on."""

    data: bytes
    ext: str
    page: int
    xref: int
    width: int
    height: int
    error: str = ""        # set, with no data, for an image refused before decoding
    caption: str = ""      # the figure caption next to it on its page (pdftext.page_captions)


class PdfError(Exception):
    """A PDF that cannot be read, with a short reason: pdf_encrypted or pdf_malformed."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def looks_like_pdf(data: bytes, content_type: str = "") -> bool:
    """True for a PDF content type or the %PDF magic near the start of the bytes."""
    if any(t in (content_type or "").lower() for t in PDF_CONTENT_TYPES):
        return True
    return b"%PDF-" in data[:1024]


def extract_pdf_images(data: bytes, max_images: int | None = None,
                       max_pixels: int | None = DEFAULT_MAX_PIXELS) -> list[PdfImage]:
    """Every distinct image (by xref) in page order; raises PdfError for unreadable PDFs.

    An image (or its soft mask) whose dictionary declares more than ``max_pixels`` pixels, or
    more decoded bytes than ``max_pixels`` RGBA pixels, is not decoded (whatever its filter:
    Flate, JBIG2, JPX, ...): its PdfImage has no data and ``error="decompression_bomb"``.
    """
    doc = _open(data)
    try:
        return _images(doc, max_images, max_pixels)
    finally:
        doc.close()


def _images(doc: pymupdf.Document, max_images: int | None, max_pixels: int | None) -> list[PdfImage]:
    """Distinct images in page order, each with the caption next to it on its first page."""
    found: list[PdfImage] = []
    seen: set[int] = set()
    for pno in range(doc.page_count):
        room = max_images - len(found) if max_images else None
        new = _new_on_page(doc, pno, seen, room, max_pixels)
        captions = page_captions(doc, pno, [image.xref for image in new]) if new else {}
        for image in new:
            image.caption = captions.get(image.xref, "")
        found.extend(new)
        if max_images and len(found) >= max_images:
            break
    return found


def _new_on_page(doc: pymupdf.Document, pno: int, seen: set[int], room: int | None,
                 max_pixels: int | None) -> list[PdfImage]:
    """The page's images not seen on an earlier page, at most ``room`` of them."""
    new: list[PdfImage] = []
    for entry in _page_images(doc, pno):
        xref, smask, stream_filter = entry[0], entry[1], entry[8]
        if xref in seen or (room is not None and len(new) >= room):
            continue
        seen.add(xref)
        oversized = _oversized(doc, xref, max_pixels) or _oversized(doc, smask, max_pixels)
        new.append(PdfImage(b"", "bin", pno + 1, xref, *oversized, error="decompression_bomb")
                   if oversized else _extract(doc, xref, smask, stream_filter, pno + 1))
    return new


def pdf_rows(data: bytes, url: str, max_images: int | None = None,
             max_pixels: int | None = DEFAULT_MAX_PIXELS) -> list[ImageItem]:
    """One row per distinct embedded image (bytes in hand); one error row for an unreadable PDF, one
    skipped row (``no_images``) for a PDF without images, so every PDF is accounted for."""
    try:
        doc = _open(data)
        try:
            images, about = _images(doc, max_images, max_pixels), document_text(doc)
        finally:
            doc.close()
    except PdfError as exc:
        logger.warning("cannot read PDF %s: %s", url, exc)
        return [pdf_error_row(url, exc.reason)]
    except Exception as exc:  # noqa: BLE001 - any MuPDF failure is one error row, not a crash
        logger.warning("PDF %s failed: %r", url, exc)
        return [pdf_error_row(url, "pdf_failed")]
    return [_row(image, url, about) for image in images] or [pdf_error_row(url, "no_images", "skipped")]


def _row(image: PdfImage, url: str, about: PdfText) -> ImageItem:
    item = ImageItem(image_url=f"{url}#page={image.page}&xref={image.xref}", source_url=url,
                     source_type="pdf", pdf_page=image.page, body=image.data or None,
                     caption=image.caption, page_title=about.page_title, license=about.license,
                     license_url=about.license_url)
    if image.error:
        item.width, item.height = image.width, image.height
        item.fail(image.error)
    return item


def pdf_error_row(url: str, reason: str, status: str = "error") -> ImageItem:
    """The one row of a PDF that could not be fetched or read."""
    return ImageItem(image_url=url, source_url=url, source_type="pdf").fail(reason, status)


def pdf_links(data: bytes, url: str) -> list[tuple[int, str]]:
    """(page, absolute http(s) URL) of every link annotation, each URL once at its first page.

    URI links and relative file links (resolved against the PDF's URL); none for an unreadable PDF.
    """
    try:
        doc = _open(data)
    except PdfError:
        return []
    found: dict[str, int] = {}
    try:
        for pno in range(doc.page_count):
            for link in _page_links(doc, pno):
                target = (link.get("uri") or link.get("file") or "").strip()
                absolute = urldefrag(urljoin(url, target))[0] if target else ""
                if urlsplit(absolute).scheme in ("http", "https"):
                    found.setdefault(absolute, pno + 1)
    finally:
        doc.close()
    return [(page, link) for link, page in found.items()]


def _page_links(doc: pymupdf.Document, pno: int) -> list[dict]:
    try:
        return doc[pno].get_links()
    except Exception:  # noqa: BLE001 - one broken page must not lose the others
        return []


def _oversized(doc: pymupdf.Document, xref: int, max_pixels: int | None) -> tuple[int, int] | None:
    """(width, height) from an image's dictionary when decoding it would pass the limit, else None."""
    if not max_pixels or not xref:
        return None
    width, height, bpc = (_int_key(doc, xref, key) for key in ("Width", "Height", "BitsPerComponent"))
    components = COMPONENTS.get(doc.xref_get_key(xref, "ColorSpace")[1], 4)
    decoded_bytes = width * height * components * max(bpc, 8) // 8
    if width * height > max_pixels or decoded_bytes > 4 * max_pixels:
        return width, height
    return None


def _int_key(doc: pymupdf.Document, xref: int, key: str) -> int:
    kind, value = doc.xref_get_key(xref, key)
    return int(value) if kind == "int" and value.isdigit() else 0


def _open(data: bytes) -> pymupdf.Document:
    if not data:
        raise PdfError("pdf_malformed", "zero-byte content")
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:  # noqa: BLE001 - MuPDF raises several types for broken files
        raise PdfError("pdf_malformed", str(exc)) from None
    problem = None
    if not doc.is_pdf:
        problem = PdfError("pdf_malformed", "the content is not a PDF")
    elif doc.needs_pass:
        problem = PdfError("pdf_encrypted", "the PDF needs a password")
    elif doc.page_count == 0:
        problem = PdfError("pdf_malformed", "no readable pages")
    if problem:
        doc.close()
        raise problem
    return doc


def _page_images(doc: pymupdf.Document, pno: int) -> list[tuple]:
    """Images a page uses (also inside its form XObjects); a broken page yields none."""
    try:
        return doc.get_page_images(pno, full=True)
    except Exception:  # noqa: BLE001 - one broken page must not lose the others
        return []


def _extract(doc: pymupdf.Document, xref: int, smask: int, stream_filter: str,
             page: int) -> PdfImage:
    """Original JPEG/JPEG 2000 bytes when usable as is; else a lossless gray/RGB(A) PNG."""
    try:
        ext = ORIGINAL_STREAMS.get(stream_filter)
        if ext and not smask:
            info = doc.extract_image(xref)
            if info["colorspace"] in (1, 3):
                return PdfImage(info["image"], ext, page, xref, info["width"], info["height"])
        pix = _to_rgb(pymupdf.Pixmap(doc, xref))
        if smask:
            pix = _apply_mask(doc, pix, smask)
        return PdfImage(pix.tobytes("png"), "png", page, xref, pix.width, pix.height)
    except Exception:  # noqa: BLE001 - keep the raw stream so the row records why it failed
        raw = _raw_stream(doc, xref)
        return PdfImage(raw, "bin", page, xref, 0, 0)


def _to_rgb(pix: pymupdf.Pixmap) -> pymupdf.Pixmap:
    """Drop alpha and convert CMYK / other colour spaces to RGB; gray stays gray."""
    if pix.alpha:
        pix = pymupdf.Pixmap(pix, 0)
    if pix.colorspace is None or pix.colorspace.n not in (1, 3):
        pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
    return pix


def _apply_mask(doc: pymupdf.Document, pix: pymupdf.Pixmap, smask: int) -> pymupdf.Pixmap:
    """The image with its soft mask as alpha channel (unmasked if the mask does not fit)."""
    try:
        mask = pymupdf.Pixmap(doc, smask)
        if mask.alpha or mask.n != 1:
            mask = pymupdf.Pixmap(pymupdf.csGRAY, pymupdf.Pixmap(mask, 0) if mask.alpha else mask)
        return pymupdf.Pixmap(pix, mask)
    except Exception:  # noqa: BLE001 - a mask of another size or kind: keep the base image
        return pix


def _raw_stream(doc: pymupdf.Document, xref: int) -> bytes:
    try:
        return doc.xref_stream_raw(xref) or b""
    except Exception:  # noqa: BLE001
        return b""
