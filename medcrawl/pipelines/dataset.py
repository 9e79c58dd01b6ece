"""Write labelled images as a training set: DIR/<label>/<sha256>.<ext> + manifest.csv.

With MEDCRAWL_DATASET_LAYOUT=modality medical images go to DIR/medical/<modality>/; with
MEDCRAWL_DATASET_MODALITIES only images of those modalities enter the dataset.

Images labelled less confidently than the minimum go to DIR/uncertain/ (listed in the manifest too),
and a reviewer's correction in DIR/corrections.csv decides an image's folder over the model.

The manifest only grows: a (file, image_url, source_url) row is written once, across runs too.
Rows that arrive without bytes (their URL was up to date in the content index) get their file
from a local store; temporary files left by a killed crawl are removed and a torn last manifest
line is cut.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from scrapy.exceptions import NotConfigured
from scrapy.pipelines.files import FSFilesStore
from scrapy.statscollectors import StatsCollector
from scrapy.crawler import Crawler

from medcrawl.config import Config, LoadedModel
from medcrawl.corrections import MANIFEST_FIELDS, UNCERTAIN, DatasetDir, folder_for
from medcrawl.files import TMP_PREFIX, confident, file_name, repair_partial_line, write_once
from medcrawl.items import ImageItem
from medcrawl.labels import MEDICAL, NON_MEDICAL, OTHER_MODALITY
from medcrawl.model.classifier import Classifier
from medcrawl.pipelines.store import store_uri


class DatasetPipeline:
    """One file per unique labelled image (uncertain/ below the minimum); one manifest row per row."""

    def __init__(self, root: Path, min_confidence: float, stats: StatsCollector, store: Any = None,
                 by_modality: bool = False, modalities: tuple[str, ...] = ()):
        self.root, self.min_confidence, self.stats, self.store = root, min_confidence, stats, store
        self.by_modality, self.modalities = by_modality, modalities
        self.dataset = DatasetDir(root, by_modality)
        self._rows: set[tuple[str, str, str]] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DatasetPipeline:
        config = Config.from_crawler(crawler)
        if not config.dataset_dir:
            raise NotConfigured("MEDCRAWL_DATASET_DIR is not set")
        uri = store_uri(crawler.settings) or ""
        store = FSFilesStore(uri) if "://" not in uri or uri.startswith("file://") else None
        by_modality = config.dataset_layout == "modality"
        model = LoadedModel.from_crawler(crawler)
        if by_modality or config.dataset_modalities:
            check_modality_model(config, model.classifier)
        return cls(Path(config.dataset_dir), model.require_dataset_min_confidence(), crawler.stats, store,
                   by_modality, config.dataset_modalities)

    def open_spider(self) -> None:
        for label in (MEDICAL, NON_MEDICAL):
            (self.root / label).mkdir(parents=True, exist_ok=True)
        for stale in [*self.root.glob(f"*/{TMP_PREFIX}*"), *self.root.glob(f"*/*/{TMP_PREFIX}*")]:
            stale.unlink()                                    # a write_once cut short by a kill
        path = self.dataset.manifest
        if path.exists() and path.stat().st_size:
            repair_partial_line(path)
            self._rows = self._written_rows(path)

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
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        if data is not None and write_once(self.root / rel, data):
            self.stats.inc_value(f"medcrawl/dataset/{rel.split('/', 1)[0]}")
        fix = self.dataset.corrections().get(item.sha256)
        reviewed = {"label": fix.new_label, "modality": fix.new_modality} if fix else {}
        self.dataset.append_rows([{"file": rel, **item.row(), **reviewed}])
        return item

    def relative_path(self, item: ImageItem) -> str:
        """The image's file: ``<label>/<sha256>.<ext>``, the reviewer's label first, else uncertain/."""
        fix = self.dataset.corrections().get(item.sha256)
        if fix is not None:
            folder = folder_for(fix.new_label, fix.new_modality, self.by_modality)
        elif confident(item, self.min_confidence):
            folder = folder_for(item.label, item.modality, self.by_modality)
        else:
            folder = UNCERTAIN
        return f"{folder}/{file_name(item)}"

    def qualifies(self, item: ImageItem) -> bool:
        """A labelled image (its folder says how confidently) of a wanted modality."""
        if not confident(item, 0.0):
            return False
        if not self.modalities:
            return True
        fix = self.dataset.corrections().get(item.sha256)
        return (fix.new_modality if fix else item.modality) in self.modalities

    def _stored_bytes(self, item: ImageItem, target: Path) -> bytes | None:
        """A row without bytes (URL up to date): its file from the local store, if needed and there."""
        if target.exists() or self.store is None or not item.path:
            return None
        source = Path(self.store.basedir, item.path)
        return source.read_bytes() if source.is_file() else None


def check_modality_model(config: Config, classifier: Classifier) -> None:
    """The modality layout and filter need a model that names modalities (and the ones asked for)."""
    names = set(classifier.modalities) | {OTHER_MODALITY}
    missing = [m for m in config.dataset_modalities if m not in names]
    if not classifier.modalities or missing:
        raise ValueError(
            "invalid medcrawl settings: MEDCRAWL_DATASET_LAYOUT=modality and MEDCRAWL_DATASET_MODALITIES "
            f"need a model with a modality head that names them; {classifier.name} "
            + (f"does not name {', '.join(missing)}" if classifier.modalities else "has none"))
