"""Write confidently labelled images as a training set: DIR/<label>/<sha256>.<ext> + manifest.csv.

The manifest only grows: a (file, image_url, source_url) row is written once, across runs too.
Rows that arrive without bytes (their URL was up to date in the content index) get their file
from a local store; temporary files left by a killed crawl are removed and a torn last manifest
line is cut.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO, Any

from scrapy.exceptions import NotConfigured
from scrapy.pipelines.files import FSFilesStore
from scrapy.statscollectors import StatsCollector

from medcrawl.config import Config
from medcrawl.files import TMP_PREFIX, confident, file_name, repair_partial_line, write_once
from medcrawl.items import ROW_FIELDS, ImageItem
from medcrawl.model.classifier import MEDICAL, NON_MEDICAL
from medcrawl.pipelines.store import store_uri

MANIFEST_FIELDS = ("file", *ROW_FIELDS)


class DatasetPipeline:
    """One file per unique image labelled with confidence >= the minimum; one manifest row per row."""

    def __init__(self, root: Path, min_confidence: float, stats: StatsCollector, store: Any = None):
        self.root, self.min_confidence, self.stats, self.store = root, min_confidence, stats, store
        self._manifest: IO[str] | None = None
        self._writer: csv.DictWriter | None = None
        self._rows: set[tuple[str, str, str]] = set()

    @classmethod
    def from_crawler(cls, crawler: Any) -> DatasetPipeline:
        config = Config.from_crawler(crawler)
        if not config.dataset_dir:
            raise NotConfigured("MEDCRAWL_DATASET_DIR is not set")
        uri = store_uri(crawler.settings) or ""
        store = FSFilesStore(uri) if "://" not in uri or uri.startswith("file://") else None
        return cls(Path(config.dataset_dir), config.dataset_min_confidence, crawler.stats, store)

    def open_spider(self) -> None:
        for label in (MEDICAL, NON_MEDICAL):
            (self.root / label).mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(f"*/{TMP_PREFIX}*"):      # a write_once cut short by a kill
            stale.unlink()
        path = self.root / "manifest.csv"
        is_new = not path.exists() or path.stat().st_size == 0
        if not is_new:
            repair_partial_line(path)
            self._rows = self._written_rows(path)
        self._manifest = open(path, "a", newline="", encoding="utf-8", buffering=1)
        self._writer = csv.DictWriter(self._manifest, MANIFEST_FIELDS)
        if is_new:
            self._writer.writeheader()

    @staticmethod
    def _written_rows(manifest: Path) -> set[tuple[str, str, str]]:
        with open(manifest, newline="", encoding="utf-8") as fh:
            return {(r["file"], r["image_url"], r["source_url"])
                    for r in csv.DictReader(fh) if set(MANIFEST_FIELDS) <= set(r)}

    def process_item(self, item: Any) -> Any:
        if not (isinstance(item, ImageItem) and self.qualifies(item)):
            return item
        rel = self.relative_path(item)
        key = (rel, item.image_url, item.source_url)
        if key in self._rows:
            return item
        self._rows.add(key)
        data = item.body if item.body is not None else self._stored_bytes(item, self.root / rel)
        if data is not None and write_once(self.root / rel, data):
            self.stats.inc_value(f"medcrawl/dataset/{item.label}")
        self._writer.writerow({"file": rel, **item.row()})
        return item

    @staticmethod
    def relative_path(item: ImageItem) -> str:
        """The image's file in the dataset: ``<label>/<sha256>.<ext>``."""
        return f"{item.label}/{file_name(item)}"

    def qualifies(self, item: ImageItem) -> bool:
        """A labelled image confident enough for the training set."""
        return confident(item, self.min_confidence)

    def _stored_bytes(self, item: ImageItem, target: Path) -> bytes | None:
        """A row without bytes (URL up to date): its file from the local store, if needed and there."""
        if target.exists() or self.store is None or not item.path:
            return None
        source = Path(self.store.basedir, item.path)
        return source.read_bytes() if source.is_file() else None

    def close_spider(self) -> None:
        if self._manifest is not None:
            self._manifest.close()
