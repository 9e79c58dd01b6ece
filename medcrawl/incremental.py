"""Incremental harvests: the store, classify and dataset pipelines backed by the content index.

A re-run (a new job over the same store) does not download URLs fetched less than
``FILES_EXPIRES`` days ago, does not store or classify content the index already has, and
only appends to the dataset; it still writes one row per image occurrence it sees.
Stats: ``medcrawl/index/url_uptodate``, ``medcrawl/index/reused``, ``medcrawl/index/classified``,
``medcrawl/index/waited`` (verdicts another worker produced).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
from pathlib import Path
from typing import Any

from scrapy.http import Request
from scrapy.pipelines.files import FSFilesStore
from scrapy.pipelines.media import MediaPipeline

from medcrawl.classifier import Classifier, load_shared
from medcrawl.config import Config
from medcrawl.contentindex import ContentIndex, cacheable, shared_index
from medcrawl.export import write_once
from medcrawl.items import ImageItem
from medcrawl.pipelines.classify import ClassifyPipeline
from medcrawl.pipelines.dataset import MANIFEST_FIELDS, DatasetPipeline
from medcrawl.pipelines.store import ContentStore, ImageStorePipeline, store_uri
from medcrawl.resume import repair_partial_line

logger = logging.getLogger(__name__)
STATS = "medcrawl/index/"


class IndexedContentStore(ContentStore):
    """Content counts as stored when the index has it or another worker holds its claim."""

    def __init__(self, store: Any, stats: Any, index: ContentIndex):
        super().__init__(store, stats)
        self.index = index

    def is_stored(self, sha256: str) -> bool:
        """Called right before storing: claims the content for this worker when it is new."""
        return super().is_stored(sha256) or not self.index.claim(sha256)

    def mark_stored(self, sha256: str, stored: bool = True) -> None:
        super().mark_stored(sha256, stored)
        if not stored:
            self.index.release(sha256)


class IndexedStorePipeline(ImageStorePipeline):
    """``ImageStorePipeline`` that skips URLs fetched within ``FILES_EXPIRES`` days, stores new content only."""

    def __init__(self, store_uri: str, *, crawler: Any):
        super().__init__(store_uri, crawler=crawler)
        self.stats = crawler.stats
        self.index = shared_index(crawler, store_uri)
        if self.index is not None:
            self.content = IndexedContentStore(self.store, crawler.stats, self.index)

    @functools.cached_property
    def model_name(self) -> str:
        """The model's ``name@version`` (loaded once per process, shared with the classifier)."""
        return load_shared(self.config.model, self.config.model_engine).name

    @classmethod
    def from_crawler(cls, crawler: Any) -> IndexedStorePipeline:
        cls._update_stores(crawler.settings)
        return cls(store_uri(crawler.settings), crawler=crawler)

    def media_to_download(self, request: Request, info: MediaPipeline.SpiderInfo, *,
                          item: Any = None) -> dict | None:
        """FilesPipeline's expiry rule on the index: a URL fetched recently whose content is known."""
        entry = self.index.url_entry(request.url) if self.index else None
        if entry is None or entry.age_days() > self.expires:
            return None
        if self.index.verdict(entry.sha256, self.model_name) is None:
            return None
        self.stats.inc_value(f"{STATS}url_uptodate")
        return {"url": request.url, "path": entry.path, "checksum": entry.sha256, "status": "uptodate"}

    async def file_downloaded(self, response: Any, request: Request, info: MediaPipeline.SpiderInfo,
                              *, item: Any = None) -> str:
        sha = await super().file_downloaded(response, request, info, item=item)
        if self.index is not None:
            self.index.record_url(request.url, sha, self.content.key(response.body)[1])
        return sha


class IndexedClassifyPipeline(ClassifyPipeline):
    """``ClassifyPipeline`` that re-uses indexed verdicts and indexes the new ones."""

    def __init__(self, classifier: Classifier, config: Config):
        super().__init__(classifier, config)
        self.model_name = classifier.name
        self.index: ContentIndex | None = None
        self.stats: Any = None
        self.wait_timeout = 120.0
        self._indexed: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Any) -> IndexedClassifyPipeline:
        pipeline = super().from_crawler(crawler)
        pipeline.index = shared_index(crawler, store_uri(crawler.settings))
        pipeline.stats = crawler.stats
        pipeline.wait_timeout = crawler.settings.getfloat("MEDCRAWL_INDEX_WAIT", 120.0)
        return pipeline

    async def process_item(self, item: Any) -> Any:
        if self.index is None or not isinstance(item, ImageItem) or item.status:
            return await super().process_item(item)
        if item.body is not None and not item.sha256:
            item.sha256 = hashlib.sha256(item.body).hexdigest()
        verdict = await self._known_verdict(item.sha256) if item.sha256 else None
        if verdict is not None:
            self.stats.inc_value(f"{STATS}reused")
            return item.apply_verdict(verdict)
        item = await super().process_item(item)
        self._index(item)
        return item

    async def _known_verdict(self, sha256: str) -> dict | None:
        """The indexed verdict, waiting for the worker that claimed this content if need be."""
        verdict = self.index.verdict(sha256, self.model_name)
        if verdict is None and self.index.claimed_elsewhere(sha256):
            verdict = await self.index.wait_verdict(sha256, self.model_name, self.wait_timeout)
            self.stats.inc_value(f"{STATS}waited" if verdict else f"{STATS}wait_timeout")
        return verdict

    def _index(self, item: ImageItem) -> None:
        """Index the verdict this process produced for a content (once)."""
        verdict = item.verdict()
        if item.sha256 in self._indexed or not item.sha256:
            return
        if not cacheable(verdict):
            self.index.release(item.sha256)       # let another worker try this content
            return
        self._indexed.add(item.sha256)
        self.index.record(item.sha256, self.model_name, item.path, verdict)
        self.stats.inc_value(f"{STATS}classified")


class IncrementalDatasetPipeline(DatasetPipeline):
    """``DatasetPipeline`` whose manifest only grows: a (file, image_url, source_url) row is written once.

    Rows that reach it without bytes (their URL was up to date) get their file from a local store;
    temporary files left by a killed crawl are removed and a torn last manifest line is cut.
    """

    def __init__(self, root: Path, min_confidence: float, stats: Any, store: Any = None):
        super().__init__(root, min_confidence, stats)
        self.store = store
        self._rows: set[tuple[str, str, str]] = set()

    @classmethod
    def from_crawler(cls, crawler: Any) -> IncrementalDatasetPipeline:
        pipeline = super().from_crawler(crawler)
        uri = store_uri(crawler.settings) or ""
        if "://" not in uri or uri.startswith("file://"):
            pipeline.store = FSFilesStore(uri)
        return pipeline

    def open_spider(self) -> None:
        for stale in self.root.glob("*/.tmp-*"):      # a write_once cut short by a kill
            stale.unlink()
        manifest = self.root / "manifest.csv"
        if manifest.exists():
            repair_partial_line(manifest)
            with open(manifest, newline="", encoding="utf-8") as fh:
                self._rows = {(r["file"], r["image_url"], r["source_url"])
                              for r in csv.DictReader(fh) if set(MANIFEST_FIELDS) <= set(r)}
        super().open_spider()

    def process_item(self, item: Any) -> Any:
        if not (isinstance(item, ImageItem) and self.qualifies(item)):
            return item
        key = (self.relative_path(item), item.image_url, item.source_url)
        if key in self._rows:
            return item
        self._rows.add(key)
        if item.body is None:
            self._copy_from_store(item, self.root / key[0])
        return super().process_item(item)

    def _copy_from_store(self, item: ImageItem, target: Path) -> None:
        """Put a stored file into the dataset when the row carries no bytes (URL up to date)."""
        if target.exists() or self.store is None or not item.path:
            return
        source = Path(self.store.basedir, item.path)
        if source.is_file() and write_once(target, source.read_bytes()):
            self.stats.inc_value(f"medcrawl/dataset/{item.label}")
