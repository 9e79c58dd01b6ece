"""Write labelled images as a training set: DIR/[<split>/]<label>/<sha256>.<ext> + manifest.csv.

With MEDCRAWL_DATASET_LAYOUT=modality medical images go to DIR/medical/<modality>/; with
MEDCRAWL_DATASET_MODALITIES only images of those modalities enter the dataset, with
MEDCRAWL_DATASET_LICENSES only images under those licences. MEDCRAWL_DATASET_SPLITS puts each
source document's images in one split folder (medcrawl/splits.py).

MEDCRAWL_DATASET_DEDUPE=near (the default) keeps one image per near-duplicate group, the largest
(medcrawl/dedupe.py, DIR/near-duplicates.csv): a row whose picture the dataset already has names
the kept image's sha256 in ``duplicate_of`` (feed and manifest) and gets no file of its own. When
a larger copy arrives later it replaces the kept file and the manifest's rows follow; feed rows
already written keep the sha256 kept when they were written. ``exact`` groups identical files
only (one split each); ``off`` groups nothing (the same file may be in two splits).

Images labelled less confidently than the minimum go to DIR/uncertain/ (listed in the manifest too),
and a reviewer's correction in DIR/corrections.csv decides an image's folder over the model.

The manifest only grows: a (file, image_url, source_url) row is written once, across runs too.
Rows that arrive without bytes (their URL was up to date in the content index) get their file
from a local store; temporary files left by a killed crawl are removed and a torn last manifest
line is cut.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path
from typing import Any

from scrapy.exceptions import NotConfigured
from scrapy.pipelines.files import FSFilesStore
from scrapy.statscollectors import StatsCollector
from scrapy.crawler import Crawler

from medcrawl.config import Config, LoadedModel
from medcrawl.corrections import MANIFEST_FIELDS, UNCERTAIN, DatasetDir, folder_for
from medcrawl.dedupe import DuplicateGroups, Group
from medcrawl.files import TMP_PREFIX, confident, file_name, write_once
from medcrawl.items import ImageItem
from medcrawl.labels import MEDICAL, NON_MEDICAL, OTHER_MODALITY
from medcrawl.model.classifier import Classifier
from medcrawl.model.images import ImageError, open_image
from medcrawl.nearduplicates import PREVIEW_SIDE, Fingerprint
from medcrawl.pipelines.store import store_uri
from medcrawl.publish import BuildInfo, write_card, write_metadata
from medcrawl.splits import split_for


class DatasetPipeline:
    """One file per labelled picture (uncertain/ below the minimum); one manifest row per row."""

    def __init__(self, root: Path, min_confidence: float, stats: StatsCollector, config: Config,
                 store: Any = None, build: BuildInfo | None = None):
        self.root, self.min_confidence, self.stats, self.store = root, min_confidence, stats, store
        self.by_modality, self.modalities = config.dataset_layout == "modality", config.dataset_modalities
        self.licenses = {name.lower() for name in config.dataset_licenses}
        self.splits, self.dedupe, self.build = config.dataset_splits, config.dataset_dedupe, build
        self.dataset = DatasetDir(root, self.by_modality)
        self.groups: DuplicateGroups | None = None
        self._rows: set[tuple[str, str, str]] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DatasetPipeline:
        config = Config.from_crawler(crawler)
        if not config.dataset_dir:
            raise NotConfigured("MEDCRAWL_DATASET_DIR is not set")
        uri = store_uri(crawler.settings) or ""
        store = FSFilesStore(uri) if "://" not in uri or uri.startswith("file://") else None
        model = LoadedModel.from_crawler(crawler)
        if config.dataset_layout == "modality" or config.dataset_modalities:
            check_modality_model(config, model.classifier)
        min_confidence = model.require_dataset_min_confidence()
        return cls(Path(config.dataset_dir), min_confidence, crawler.stats, config, store,
                   build_info(config, model, min_confidence))

    def open_spider(self) -> None:
        for label in (MEDICAL, NON_MEDICAL):
            (self.root / label).mkdir(parents=True, exist_ok=True)
        for stale in self.root.rglob(f"{TMP_PREFIX}*"):
            stale.unlink()                                    # a write_once cut short by a kill
        self.dataset.upgrade_manifest()
        path = self.dataset.manifest
        if path.exists() and path.stat().st_size:
            self._rows = self._written_rows(path)
        if self.dedupe != "off":
            self.groups = DuplicateGroups(self.root, self.dedupe)

    def close_spider(self) -> None:
        """The imagefolder metadata and the dataset card, for everything the folder holds now."""
        rows = self.dataset.rows()
        write_metadata(self.root, rows)
        if self.build is not None:
            write_card(self.root, self.build, rows)

    @staticmethod
    def _written_rows(manifest: Path) -> set[tuple[str, str, str]]:
        with open(manifest, newline="", encoding="utf-8") as fh:
            return {(r["file"], r["image_url"], r["source_url"])
                    for r in csv.DictReader(fh) if set(MANIFEST_FIELDS) <= set(r)}

    def process_item(self, item: Any) -> Any:
        if not (isinstance(item, ImageItem) and self.qualifies(item)):
            return item
        group = self._group(item)
        split = group.split if group else split_for(item.source_url, self.splits)
        kept = group.kept if group else item.sha256
        item.duplicate_of = "" if kept == item.sha256 else kept
        rel = self._kept_file(item, group, split)
        key = (rel, item.image_url, item.source_url)
        if key in self._rows:
            return item
        self._rows.add(key)
        fix = self.dataset.corrections().get(item.sha256)
        reviewed = {"label": fix.new_label, "modality": fix.new_modality} if fix else {}
        self.dataset.append_rows([{"file": rel, "split": split, **item.row(), **reviewed}])
        return item

    def _group(self, item: ImageItem) -> Group | None:
        """The item's near-duplicate group (recorded now when its content is new); None when off."""
        if self.groups is None:
            return None
        group = self.groups.group_of(item.sha256)
        if group is None:
            fingerprint = self._fingerprint(item) if self.dedupe == "near" else None
            group = self.groups.add(item.sha256, (item.width or 0, item.height or 0),
                                    split_for(item.source_url, self.splits), fingerprint)
            if group.id != item.sha256:                  # joined an earlier picture's group
                self.stats.inc_value("medcrawl/dataset/near_duplicates")
        return group

    def _kept_file(self, item: ImageItem, group: Group | None, split: str) -> str:
        """The file holding the item's picture, written when the item is the kept image and its file
        is not there yet; a larger copy replaces the smaller one's file (manifest rows follow)."""
        if item.duplicate_of and group is not None and group.id in self._files:
            return self._files[group.id]
        item.duplicate_of = ""                   # its group's kept file never made it (a killed crawl)
        rel = self.relative_path(item, split)
        if not (self.root / rel).exists():
            data = item.body if item.body is not None else self._stored_bytes(item, self.root / rel)
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
            if data is not None and write_once(self.root / rel, data):
                self.stats.inc_value(f"medcrawl/dataset/{rel.split('/', 1)[0]}")
        if group is not None:
            old = self._files.get(group.id)
            if old and old != rel:
                self.dataset.repoint(old, rel, item.sha256)
                self._rows = {(rel if f == old else f, u, s) for f, u, s in self._rows}
                (self.root / old).unlink(missing_ok=True)
                self.stats.inc_value("medcrawl/dataset/replaced_by_larger")
            self._files[group.id] = rel
        return rel

    @functools.cached_property
    def _files(self) -> dict[str, str]:
        """Each group's file, as the manifest has it."""
        files: dict[str, str] = {}
        if self.groups is None:
            return files
        for row in self.dataset.rows():
            group = self.groups.group_of(row["sha256"])
            if group is not None and row["file"] and (group.id not in files or row["sha256"] == group.kept):
                files[group.id] = row["file"]       # the kept content's file; else (a crawl killed
        return files                                # before it was written) the file the rows name

    def _fingerprint(self, item: ImageItem) -> Fingerprint | None:
        """The item's fingerprint: from labelling's small copy, else its bytes decoded small."""
        image = item.preview
        if image is None:
            data = item.body if item.body is not None else self._stored_bytes(item, None)
            try:
                image, _ = open_image(data or b"", draft_size=PREVIEW_SIDE, reduce_to=PREVIEW_SIDE)
            except ImageError:
                return None
            image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        return Fingerprint.of(image)

    def relative_path(self, item: ImageItem, split: str = "") -> str:
        """The image's file: ``[<split>/]<label>/<sha256>.<ext>``, the reviewer's label first, else
        uncertain/ (in no split)."""
        fix = self.dataset.corrections().get(item.sha256)
        if fix is not None:
            folder = folder_for(fix.new_label, fix.new_modality, self.by_modality, split)
        elif confident(item, self.min_confidence):
            folder = folder_for(item.label, item.modality, self.by_modality, split)
        else:
            folder = UNCERTAIN
        return f"{folder}/{file_name(item)}"

    def qualifies(self, item: ImageItem) -> bool:
        """A labelled image (its folder says how confidently) of a wanted modality and licence."""
        if not confident(item, 0.0):
            return False
        if self.licenses and (item.license or "").lower() not in self.licenses:
            return False
        if not self.modalities:
            return True
        fix = self.dataset.corrections().get(item.sha256)
        return (fix.new_modality if fix else item.modality) in self.modalities

    def _stored_bytes(self, item: ImageItem, target: Path | None) -> bytes | None:
        """A row without bytes (URL up to date): its file from the local store, if needed and there."""
        if (target is not None and target.exists()) or self.store is None or not item.path:
            return None
        source = Path(self.store.basedir, item.path)
        return source.read_bytes() if source.is_file() else None


def build_info(config: Config, model: LoadedModel, min_confidence: float) -> BuildInfo:
    """The card's account of the crawl's model and dataset settings."""
    return BuildInfo(model.classifier.name, model.decision_threshold, min_confidence, config.dataset_dedupe,
                     config.dataset_splits, config.dataset_licenses, config.dataset_modalities,
                     config.split_panels)


def check_modality_model(config: Config, classifier: Classifier) -> None:
    """The modality layout and filter need a model that names modalities (and the ones asked for)."""
    names = set(classifier.modalities) | {OTHER_MODALITY}
    missing = [m for m in config.dataset_modalities if m not in names]
    if not classifier.modalities or missing:
        raise ValueError(
            "invalid medcrawl settings: MEDCRAWL_DATASET_LAYOUT=modality and MEDCRAWL_DATASET_MODALITIES "
            f"need a model with a modality head that names them; {classifier.name} "
            + (f"does not name {', '.join(missing)}" if classifier.modalities else "has none"))
