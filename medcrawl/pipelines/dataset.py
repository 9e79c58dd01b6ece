"""Write confidently labelled images as a training set: DIR/<label>/<sha256>.<ext> + manifest.csv."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO, Any

from scrapy.exceptions import NotConfigured
from scrapy.statscollectors import StatsCollector

from medcrawl.classifier import MEDICAL, NON_MEDICAL
from medcrawl.config import Config
from medcrawl.export import write_once
from medcrawl.images import extension_for
from medcrawl.items import ROW_FIELDS, ImageItem

MANIFEST_FIELDS = ("file", *ROW_FIELDS)


class DatasetPipeline:
    """One file per unique image labelled with confidence >= the minimum; one manifest row per row."""

    def __init__(self, root: Path, min_confidence: float, stats: StatsCollector):
        self.root, self.min_confidence, self.stats = root, min_confidence, stats
        self._manifest: IO[str] | None = None
        self._writer: csv.DictWriter | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> DatasetPipeline:
        config = Config.from_settings(crawler.settings)
        if not config.dataset_dir:
            raise NotConfigured("MEDCRAWL_DATASET_DIR is not set")
        return cls(Path(config.dataset_dir), config.dataset_min_confidence, crawler.stats)

    def open_spider(self) -> None:
        for label in (MEDICAL, NON_MEDICAL):
            (self.root / label).mkdir(parents=True, exist_ok=True)
        path = self.root / "manifest.csv"
        is_new = not path.exists() or path.stat().st_size == 0
        self._manifest = open(path, "a", newline="", encoding="utf-8", buffering=1)
        self._writer = csv.DictWriter(self._manifest, MANIFEST_FIELDS)
        if is_new:
            self._writer.writeheader()

    def process_item(self, item: Any) -> Any:
        if isinstance(item, ImageItem) and self.qualifies(item):
            rel = self.relative_path(item)
            if item.body is not None and write_once(self.root / rel, item.body):
                self.stats.inc_value(f"medcrawl/dataset/{item.label}")
            self._writer.writerow({"file": rel, **item.row()})
        return item

    @staticmethod
    def relative_path(item: ImageItem) -> str:
        """The image's file in the dataset: ``<label>/<sha256>.<ext>``."""
        return f"{item.label}/{item.sha256}.{extension_for(item.format)}"

    def qualifies(self, item: ImageItem) -> bool:
        """A labelled image confident enough for the training set."""
        return (item.status == "ok" and item.label in (MEDICAL, NON_MEDICAL)
                and (item.confidence or 0.0) >= self.min_confidence)

    def close_spider(self) -> None:
        if self._manifest is not None:
            self._manifest.close()
