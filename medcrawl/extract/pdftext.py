"""What a PDF says about its images: each figure's caption, the document's title and licence.

A caption is the text block just under an image's rectangle (or, failing that, just above it) that
starts like a figure caption: "Figure 3.", "Fig. 3", "FIGURE 3:", "Fig. 2-1" ("Table 1" does not).
Positions come from PyMuPDF (``page.get_image_info`` and ``page.get_text("blocks")``). Nothing
here raises for a broken page or metadata: that text is left empty and the images are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pymupdf

from medcrawl.extract.captions import MAX_TITLE, clean_text
from medcrawl.extract.licenses import license_in_text, spdx_id

CAPTION_START = re.compile(
    r"^(?:fig(?:ure)?s?\.?|abb(?:ildung)?\.?|plate|scheme|illustration)\s*"
    r"(?:[A-Z]?\d+(?:[.\-–]\d+)*[a-z]?|[IVX]+\b)\s*(?:[.:|)\-–—]|\s|$)", re.I)
# How far (as a share of the page height) a caption may sit from its image's edge.
MAX_GAP = 0.5
# Text blocks up to this long between an image and its caption are panel labels, not running text.
MAX_LABEL = 100
# Pages whose text and links are searched for a Creative Commons licence.
LICENSE_PAGES = 3
_XMP_URL = re.compile(r"""(?:rdf:resource=|>)\s*["']?(https?://[^"'<\s]+)""")
_XMP_RIGHTS = re.compile(r"<(?:dc:rights|xmpRights:UsageTerms)\b.*?</(?:dc:rights|xmpRights:UsageTerms)>", re.S)


@dataclass
class PdfText:
    """The document-level columns of a PDF's rows."""

    page_title: str = ""
    license: str = ""
    license_url: str = ""


def page_captions(doc: pymupdf.Document, pno: int, xrefs: list[int]) -> dict[int, str]:
    """The caption of each image (by xref) placed on page ``pno`` (0-based); images without one
    are left out."""
    try:
        page = doc[pno]
        blocks = [b[:5] for b in page.get_text("blocks") if b[6] == 0 and b[4].strip()]
        if not any(_is_caption(block) for block in blocks):
            return {}
        placed = _placements(page)
        found = {}
        for xref in xrefs:
            rects = placed.get(xref) or [r for r in page.get_image_rects(xref) if not r.is_empty]
            caption = _nearest(max(rects, key=lambda r: r.width * r.height), blocks,
                               MAX_GAP * page.rect.height) if rects else ""
            if caption:
                found[xref] = caption
        return found
    except Exception:  # noqa: BLE001 - a page MuPDF cannot lay out gives no captions, not an error
        return {}


def _placements(page: pymupdf.Page) -> dict[int, list[pymupdf.Rect]]:
    """Where each image (by xref) is drawn on the page, so that two pictures in two figures each
    get their own figure's caption. MuPDF names one xref for identical pictures and none for some
    drawn inside forms: those are found by content (``get_image_rects``)."""
    placed: dict[int, list[pymupdf.Rect]] = {}
    for info in page.get_image_info(xrefs=True):
        rect = pymupdf.Rect(info["bbox"])
        if info.get("xref") and not rect.is_empty:
            placed.setdefault(info["xref"], []).append(rect)
    return placed


def _is_caption(block: tuple) -> bool:
    return bool(CAPTION_START.match(block[4].lstrip()))


def _nearest(rect: pymupdf.Rect, blocks: list[tuple], max_gap: float) -> str:
    """The nearest caption block under the image (else above it) that overlaps it horizontally,
    within ``max_gap`` and with no paragraph of running text wholly in between. Other images and
    short labels ("(a) before") may sit in between: a figure's panels share its caption."""
    beside = [b for b in blocks if min(b[2], rect.x1) - max(b[0], rect.x0) > 0]
    paragraphs = [b for b in beside if not _is_caption(b) and len(b[4].strip()) > MAX_LABEL]
    below = sorted((b for b in beside if _is_caption(b) and 0 <= b[1] - rect.y1 + 2 <= max_gap),
                   key=lambda b: b[1])
    above = sorted((b for b in beside if _is_caption(b) and 0 <= rect.y0 - b[3] + 2 <= max_gap),
                   key=lambda b: -b[3])
    for top, bottom, caption in [(rect.y1, b[1], b) for b in below] + [(b[3], rect.y0, b) for b in above]:
        if not any(p[1] >= top - 2 and p[3] <= bottom + 2 for p in paragraphs):
            return clean_text(caption[4])
    return ""


def document_text(doc: pymupdf.Document) -> PdfText:
    """The PDF's title (document information) and licence: XMP rights, then the information
    dictionary, then a Creative Commons URL or sentence in the first pages' text, then their links."""
    try:
        title = clean_text(doc.metadata.get("title") if doc.metadata else "", MAX_TITLE)
    except Exception:  # noqa: BLE001 - a broken information dictionary: no title
        title = ""
    license, url = _xmp_license(doc)
    if not license:
        license, url = _text_license(doc)
    return PdfText(title, license, url)


def _xmp_license(doc: pymupdf.Document) -> tuple[str, str]:
    try:
        xmp = doc.get_xml_metadata() or ""
        info = doc.metadata or {}
    except Exception:  # noqa: BLE001
        return "", ""
    for url in _XMP_URL.findall(xmp):
        if license := spdx_id(url):
            return license, url
    for rights in _XMP_RIGHTS.findall(xmp):
        if license := spdx_id(re.sub(r"<[^>]+>", " ", rights)):
            return license, ""
    return license_in_text(" ".join(str(info.get(key) or "") for key in ("subject", "keywords")))


def _text_license(doc: pymupdf.Document) -> tuple[str, str]:
    links: list[str] = []
    for pno in range(min(LICENSE_PAGES, doc.page_count)):
        try:
            page = doc[pno]
            license, url = license_in_text(page.get_text())
            links.extend(link.get("uri") or "" for link in page.get_links())
        except Exception:  # noqa: BLE001 - one broken page must not hide the others
            continue
        if license:
            return license, url
    for link in links:
        if license := spdx_id(link):
            return license, link
    return "", ""
