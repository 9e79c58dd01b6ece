"""Write result rows (terminal table, CSV, JSON lines); copy medical images out, once per image."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import unicodedata
import zipfile
from pathlib import Path
from typing import BinaryIO

from medcrawl.files import confident, file_name, write_once
from medcrawl.items import ROW_FIELDS, ImageItem
from medcrawl.labels import MEDICAL

FORMATS = ("table", "csv", "jsonl")


class FeedWriter:
    """CSV or JSON lines byte-for-byte like Scrapy's feed exporters (UTF-8), without Scrapy.

    Importing Scrapy pulls in Twisted's reactor, whose zope.interface declarations break
    Gradio's component constructor in the same process; tests compare this to Scrapy's output.
    """

    def __init__(self, stream: BinaryIO, fmt: str):
        self.fmt = fmt
        self.text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        if fmt == "csv":
            self.csv = csv.writer(self.text)
            self.csv.writerow(ROW_FIELDS)

    def write(self, item: ImageItem) -> None:
        row = item.row()
        if self.fmt == "csv":
            self.csv.writerow(["" if v is None else v for v in row.values()])
        else:
            self.text.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.text.flush()
        self.text.detach()                 # leave the caller's stream open


class TableWriter:
    """A plain-text table of the main columns, printed when all rows are in; the caption (else the
    alt text) cut to CAPTION_WIDTH characters here only (CSV and JSON lines keep it whole)."""

    COLUMNS = ("image", "type", "page", "size", "label", "confidence", "modality", "status", "caption")
    CAPTION_WIDTH = 40

    def __init__(self, stream: BinaryIO, width: int | None = None):
        self.stream = stream
        self.rows: list[tuple[str, ...]] = []
        self.width = width or shutil.get_terminal_size((120, 24)).columns

    def write(self, item: ImageItem) -> None:
        size = f"{item.width}x{item.height}" if item.width else ""
        conf = f"{item.confidence:.3f}" if item.confidence is not None else ""
        status = f"{item.status}: {item.error}" if item.error else item.status
        caption = _fit(" ".join((item.caption or item.alt).split()), self.CAPTION_WIDTH, False).rstrip()
        self.rows.append(tuple(map(printable, (item.image_url, item.source_type, str(item.pdf_page or ""),
                                               size, item.label, conf, item.modality, status, caption))))

    def close(self) -> None:
        rows = [self.COLUMNS, *self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.COLUMNS))]
        over = sum(widths) + 2 * (len(widths) - 1) - self.width
        for column, floor in ((len(widths) - 1, 12), (0, 20)):     # narrow the caption, then the image
            cut = max(0, min(over, widths[column] - floor))
            widths[column], over = widths[column] - cut, over - cut
        lines = ["  ".join(_fit(cell, w, i == 0) for i, (cell, w) in enumerate(zip(row, widths)))
                 .rstrip() for row in rows]
        self.stream.write(("\n".join(lines) + "\n").encode())
        self.stream.flush()


def printable(text: str) -> str:
    """``text`` with control, format (e.g. bidi overrides) and undecodable characters escaped
    (``\\x1b``, ``\\u202e``), so a file name cannot move the cursor or recolour a terminal."""
    return "".join(ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   if unicodedata.category(ch) in UNPRINTABLE else ch for ch in text)


UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def open_writer(fmt: str, stream: BinaryIO):
    """A row writer for one of FORMATS on a binary stream."""
    return TableWriter(stream) if fmt == "table" else FeedWriter(stream, fmt)


def write_rows(items: list[ImageItem], path: str | os.PathLike, fmt: str = "csv") -> Path:
    """Write rows to a file in one go (the web page's download)."""
    with open(path, "wb") as fh:
        writer = open_writer(fmt, fh)
        for item in items:
            writer.write(item)
        writer.close()
    return Path(path)


def _fit(cell: str, width: int, keep_tail: bool) -> str:
    if len(cell) <= width:
        return cell.ljust(width)
    return ("…" + cell[-(width - 1):]) if keep_tail else (cell[:width - 1] + "…")


class MedicalExport:
    """Copy images labelled medical at or above ``min_confidence`` into a folder as SHA256.EXT
    (``by_modality``: MODALITY/SHA256.EXT), only those of ``modalities`` when given."""

    def __init__(self, directory: str | os.PathLike, min_confidence: float, by_modality: bool = False,
                 modalities: tuple[str, ...] = ()):
        self.directory, self.min_confidence = Path(directory), min_confidence
        self.by_modality, self.modalities = by_modality, modalities
        self.directory.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, Path] = {}

    def wants(self, item: ImageItem) -> bool:
        """Labelled medical, confident enough, of a wanted modality, and its bytes still in hand."""
        return (item.body is not None and confident(item, self.min_confidence, (MEDICAL,))
                and (not self.modalities or item.modality in self.modalities))

    def add(self, item: ImageItem) -> Path | None:
        """Write the image once per sha256 and set ``item.path`` (relative to the folder)."""
        if not self.wants(item):
            return None
        path = self.files.get(item.sha256)
        if path is None:
            folder = self.directory / item.modality if self.by_modality else self.directory
            folder.mkdir(exist_ok=True)
            path = folder / file_name(item)
            write_once(path, item.body or b"")
            self.files[item.sha256] = path
        item.path = path.relative_to(self.directory).as_posix()
        return path

    def zip(self, dest: str | os.PathLike) -> Path:
        """All exported images in one zip file."""
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zf:
            for path in self.files.values():
                zf.write(path, path.relative_to(self.directory).as_posix())
        return Path(dest)
