"""Turn one-off inputs (files, folders, PDFs, image URLs, page URLs) into ImageItems with bodies.

Shared by ``medcrawl classify`` and the web page. Reading never raises for a bad input: it yields
an error row with a specific reason instead, and the other inputs go on.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcrawl.model.classifier import Classifier
from medcrawl.extract.html import extract_page
from medcrawl.oneoff.fetch import Fetcher, FetchError
from medcrawl.model.images import IMAGE_SUFFIXES, content_extension, sniff
from medcrawl.items import ImageItem
from medcrawl.model.labelling import label_items, panel_rows
from medcrawl.extract.pdf import looks_like_pdf, pdf_rows
from medcrawl.extract.medical import MedicalOptions, medical_format, medical_rows

# Files read as images; any other file that is no PDF, DICOM or NIfTI gets a skipped row with
# reason unsupported_type (a directory walk reports every file but hidden ones).
FILE_SUFFIXES = IMAGE_SUFFIXES | {".pdf"}
HTML_TYPES = ("text/html", "application/xhtml+xml")
logger = logging.getLogger(__name__)
# PyMuPDF is not thread-safe, and the web page runs requests in parallel.
_PDF_LOCK = threading.Lock()


def is_url(text: str) -> bool:
    """True for an http(s) URL (anything else is a local path)."""
    return text.lower().startswith(("http://", "https://"))


def expand(inputs: Iterable[str]) -> list[str]:
    """Inputs with directories replaced by the files under them (not hidden ones), sorted."""
    out: list[str] = []
    for text in inputs:
        if not is_url(text) and os.path.isdir(text):
            out.extend(str(p) for p in sorted(Path(text).rglob("*")) if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(text).parts))
        else:
            out.append(text)
    return out


@dataclass
class InputReader:
    """Read inputs into ImageItems: at most ``max_images``, all fetches within ``time_budget``."""

    fetcher: Fetcher
    max_bytes: int = 100 * 1024 * 1024
    max_images: int | None = None         # None: no limit
    time_budget: float | None = None      # seconds for all fetches of one items() call
    workers: int = 8
    medical: MedicalOptions = field(default_factory=MedicalOptions)   # DICOM frames, pixel limit
    truncated: bool = field(default=False, init=False)   # max_images cut the inputs short
    _deadline: float | None = field(default=None, init=False, repr=False)

    def items(self, inputs: Iterable[str]) -> Iterator[ImageItem]:
        """ImageItems for every input, directories expanded, in input order."""
        self.truncated, count = False, 0
        if self.time_budget is not None:
            self._deadline = time.monotonic() + self.time_budget
        for source in expand(inputs):
            for item in self.read(source, self._left(count)):
                yield item
                count += 1
            if self.max_images is not None and count >= self.max_images:
                self.truncated = True
                return

    def read(self, source: str, limit: int | None = None) -> Iterator[ImageItem]:
        """Items for one file or URL (one item, or one per image of a PDF or page)."""
        if is_url(source):
            return self._read_url(source, limit)
        return self._read_file(source, limit)

    def _left(self, count: int) -> int | None:
        return None if self.max_images is None else self.max_images - count

    def _read_file(self, path: str, limit: int | None) -> Iterator[ImageItem]:
        try:
            size = os.path.getsize(path)
            if size > self.max_bytes:
                raise _TooLarge(f"{path} is {size} bytes, over the {self.max_bytes} byte limit")
            data = Path(path).read_bytes()
        except (OSError, _TooLarge) as exc:
            logger.warning("cannot read %s: %s", path, exc)
            item = ImageItem(image_url=path, source_url=path, source_type="file")
            yield item.fail(_os_reason(exc))
            return
        if looks_like_pdf(data):
            yield from self._pdf_items(data, path, limit)
        elif kind := medical_format(data, path):
            yield from medical_rows(kind, data, path, path, "file", self.medical)[:limit]
        elif Path(path).suffix.lower() not in FILE_SUFFIXES and not content_extension(data):
            yield ImageItem(image_url=path, source_url=path, source_type="file").fail(
                "unsupported_type", "skipped")
        else:
            yield ImageItem(image_url=path, source_url=path, source_type="file", body=data)

    def _read_url(self, url: str, limit: int | None) -> Iterator[ImageItem]:
        try:
            resp = self.fetcher.get(url, self._deadline)
        except FetchError as exc:
            logger.warning("cannot fetch %s: %s", url, exc)
            yield ImageItem(image_url=url, source_url=url, source_type="url").fail(exc.reason)
            return
        if looks_like_pdf(resp.body, resp.content_type):
            yield from self._pdf_items(resp.body, resp.url, limit)
        elif kind := medical_format(resp.body, resp.url, resp.content_type):
            yield from medical_rows(kind, resp.body, resp.url, url, "url", self.medical)[:limit]
        elif resp.content_type in HTML_TYPES or sniff(resp.body) == "html":
            yield from self._page_items(resp.body, resp.url, limit)
        else:
            yield ImageItem(image_url=resp.url, source_url=url, source_type="url", body=resp.body)

    def _pdf_items(self, data: bytes, source: str, limit: int | None) -> Iterator[ImageItem]:
        with _PDF_LOCK:
            rows = pdf_rows(data, source, max_images=limit)
        yield from rows

    def _page_items(self, html: bytes, page_url: str, limit: int | None) -> Iterator[ImageItem]:
        """The images on one page, fetched a window at a time (no further crawling)."""
        links = extract_page(html, page_url)
        urls = list(dict.fromkeys(links.images + links.medical))[:limit]
        if not urls:
            yield _no_images(page_url)
        window = max(1, self.workers) * 4
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            for start in range(0, len(urls), window):
                for rows in pool.map(lambda u: self._page_image(u, page_url, links.row_text(u)),
                                     urls[start:start + window]):
                    yield from rows

    def _page_image(self, url: str, page_url: str, text: dict[str, Any]) -> list[ImageItem]:
        """One row for an image on the page (with its text and licence columns); one per frame
        for a DICOM/NIfTI file it links."""
        item = ImageItem(image_url=url, source_url=page_url, source_type="html", **text)
        try:
            resp = self.fetcher.get(url, self._deadline)
        except FetchError as exc:
            logger.warning("cannot fetch image %s on %s: %s", url, page_url, exc)
            return [item.fail(exc.reason)]
        if kind := medical_format(resp.body, resp.url, resp.content_type):
            return medical_rows(kind, resp.body, url, page_url, "html", self.medical)
        item.body = resp.body
        return [item]


def _no_images(page_url: str) -> ImageItem:
    """A page without images still gets a row, so every input is accounted for (PDFs: pdf_rows)."""
    return ImageItem(image_url=page_url, source_url=page_url, source_type="html").fail(
        "no_images", "skipped")


class _TooLarge(Exception):
    """A local file over the byte limit."""


def _os_reason(exc: Exception) -> str:
    if isinstance(exc, _TooLarge):
        return "too_large"
    if isinstance(exc, FileNotFoundError):
        return "not_found"
    if isinstance(exc, PermissionError):
        return "permission_denied"
    if isinstance(exc, IsADirectoryError):
        return "is_a_directory"
    return "unreadable"


def labelled_batches(classifier: Classifier, items: Iterable[ImageItem], batch_size: int = 32,
                     min_size: int = 64, preview: int = 0,
                     split_panels: bool = False) -> Iterator[list[ImageItem]]:
    """Label items a batch at a time: one model call per batch, never one per image; with
    ``split_panels`` each compound figure's panel rows follow its row, labelled too."""
    it = iter(items)
    while chunk := list(itertools.islice(it, max(1, batch_size))):
        batch = label_items(classifier, chunk, min_size=min_size, preview=preview)
        if split_panels:
            panels = {id(item): panel_rows(item) for item in batch}
            label_items(classifier, [row for rows in panels.values() for row in rows],
                        min_size=min_size, preview=preview)
            batch = [row for item in batch for row in (item, *panels[id(item)])]
        yield batch
