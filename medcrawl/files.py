"""Image files on disk, shared by the crawl and the CLI: which rows are kept, their names, crash-safe writes."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from medcrawl.items import ImageItem
from medcrawl.labels import MEDICAL, NON_MEDICAL
from medcrawl.model.images import extension_for

logger = logging.getLogger(__name__)


def confident(item: ImageItem, min_confidence: float, labels: tuple[str, ...] = (MEDICAL, NON_MEDICAL)) -> bool:
    """Labelled (with one of ``labels``) at least ``min_confidence`` confidently: worth keeping as a file."""
    return (item.status == "ok" and item.label in labels
            and (item.confidence or 0.0) >= min_confidence)


def file_name(item: ImageItem) -> str:
    """The name an image is kept under: ``<sha256>.<ext>`` of its format."""
    return f"{item.sha256}.{extension_for(item.format)}"


def write_once(path: Path, data: bytes) -> bool:
    """Write atomically unless the file exists (same name, same content); True if written now."""
    if path.exists():
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return True


TMP_PREFIX = ".tmp-"     # a write_once cut short by a kill leaves such a file behind


def repair_partial_line(path: str | os.PathLike) -> int:
    """Cut a last line that has no newline (a write cut short by a kill); returns bytes removed."""
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        keep = _last_newline_end(fh, size)
        fh.truncate(keep)
    logger.warning("Cut a partial last line (%d bytes) from %s", size - keep, path)
    return size - keep


def _last_newline_end(fh: Any, size: int, block: int = 65536) -> int:
    """Offset just after the last newline in the file (0 if none)."""
    end = size
    while end > 0:
        start = max(0, end - block)
        fh.seek(start)
        chunk = fh.read(end - start)
        at = chunk.rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0
