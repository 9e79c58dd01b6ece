"""Label rows medical / non-medical in batches on one thread of their own; same bytes labelled once.

With a content index (a null index when off) verdicts known from earlier runs or other workers
are re-used and new ones are indexed. Stats: ``medcrawl/index/reused``, ``medcrawl/index/classified``,
``medcrawl/index/waited`` (verdicts another worker produced), ``medcrawl/index/wait_timeout``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from scrapy.utils.asyncio import CallLaterResult, call_later
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from scrapy.crawler import Crawler
from twisted.internet.defer import Deferred, DeferredList

from medcrawl.model.classifier import Classifier, ModelError
from medcrawl.config import Config, IndexConfig, LoadedModel
from medcrawl.items import ImageItem
from medcrawl.model.labelling import label_items
from medcrawl.nearduplicates import PREVIEW_SIDE
from medcrawl.executor import OneThreadExecutor
from medcrawl.pipelines.store import store_uri
from medcrawl.scaleout.contentindex import ContentIndex, NullContentIndex, cacheable, shared_index

logger = logging.getLogger(__name__)

class Batcher:
    """Collect items into batches of ``size``; a partial batch waits at most ``max_wait`` seconds."""

    def __init__(self, label_batch: Callable[[list[ImageItem]], Any], size: int, max_wait: float,
                 executor: OneThreadExecutor):
        self.label_batch, self.size, self.max_wait, self.executor = label_batch, size, max_wait, executor
        self._queue: list[tuple[ImageItem, Deferred]] = []
        self._timer: CallLaterResult | None = None
        self._running: set[Deferred] = set()

    def submit(self, item: ImageItem) -> Deferred:
        """Queue an item; the Deferred fires with it once its batch is labelled."""
        done: Deferred = Deferred()
        self._queue.append((item, done))
        if len(self._queue) >= self.size:
            self.flush()
        elif self._timer is None:
            self._timer = call_later(self.max_wait, self.flush)
        return done

    def flush(self) -> None:
        """Send whatever is queued to the labelling thread now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._queue:
            batch, self._queue = self._queue, []
            running = deferred_from_coro(self._label(batch))
            self._running.add(running)
            running.addBoth(lambda _: self._running.discard(running))

    async def _label(self, batch: list[tuple[ImageItem, Deferred]]) -> None:
        items = [item for item, _ in batch]
        try:
            await self.executor.run(self.label_batch, items)
        except Exception:  # noqa: BLE001 - a failed batch must still release every row
            logger.exception("Labelling a batch of %d images failed", len(items))
            for item in items:
                item.fail("classifier_error")
        for item, done in batch:
            done.callback(item)

    async def close(self) -> None:
        """Label everything still queued and wait for it."""
        self.flush()
        while self._running:
            await maybe_deferred_to_future(DeferredList(list(self._running)))


class ClassifyPipeline:
    """Fill label, probability, confidence, size and format of every row that has content."""

    def __init__(self, classifier: Classifier, config: Config, index: ContentIndex | None = None,
                 stats: Any = None, wait_timeout: float = IndexConfig.wait):
        self.model_name, self.stats, self.wait_timeout = classifier.name, stats, wait_timeout
        self.index = NullContentIndex() if index is None else index
        self._indexed: set[str] = set()
        self.executor = OneThreadExecutor("medcrawl-classify")
        near = bool(config.dataset_dir) and config.dataset_dedupe == "near"
        label = functools.partial(label_items, classifier, min_size=config.min_size,
                                  max_pixels=config.max_pixels, preview=PREVIEW_SIDE if near else 0)
        self.batcher = Batcher(label, config.batch_size, config.batch_max_wait, self.executor)
        self._verdicts: dict[str, dict] = {}           # sha256 -> ImageItem.verdict()
        self._waiting: dict[str, list[Deferred]] = {}  # sha256 -> rows awaiting its verdict
        self._submitted: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ClassifyPipeline:
        config = Config.from_crawler(crawler)
        try:
            model = LoadedModel.from_crawler(crawler)
        except ModelError as exc:
            logger.critical("medcrawl cannot start: %s", exc)
            raise
        classifier = model.classifier
        logger.info("Model %s loaded (%s engine, %dpx input, decision threshold %.3f)", classifier.name,
                    classifier.engine, classifier.input_size, model.decision_threshold)
        return cls(classifier, config, shared_index(crawler, store_uri(crawler.settings)), crawler.stats,
                   IndexConfig.from_crawler(crawler).wait)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ImageItem) or item.status:
            return item
        if not item.content_sha256():
            return item.fail("no_content")
        verdict = await self._known_verdict(item.sha256) if self.index else None
        if verdict is not None:
            self.stats.inc_value("medcrawl/index/reused")
            return item.apply_verdict(verdict)
        item = await self._label(item)
        if self.index:
            self._index(item)
        return item

    async def _known_verdict(self, sha256: str) -> dict | None:
        """The indexed verdict, waiting for the worker that claimed this content if need be."""
        verdict = self.index.verdict(sha256, self.model_name)
        if verdict is None and self.index.claimed_elsewhere(sha256):
            verdict = await self.index.wait_verdict(sha256, self.model_name, self.wait_timeout)
            self.stats.inc_value("medcrawl/index/waited" if verdict else "medcrawl/index/wait_timeout")
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
        self.stats.inc_value("medcrawl/index/classified")

    async def _label(self, item: ImageItem) -> ImageItem:
        """This process's verdict: one labelling per content, in batches."""
        if item.sha256 not in self._verdicts:
            self._submit_first(item)
            await maybe_deferred_to_future(self._wait(item.sha256))
        return self._apply(item)

    def _submit_first(self, item: ImageItem) -> None:
        """Send the first row carrying this content's bytes to the batcher."""
        if item.body is not None and item.sha256 not in self._submitted:
            self._submitted.add(item.sha256)
            self.batcher.submit(item).addCallback(self._labelled)

    def _wait(self, sha256: str) -> Deferred:
        waiter: Deferred = Deferred()
        self._waiting.setdefault(sha256, []).append(waiter)
        return waiter

    def _labelled(self, item: ImageItem) -> None:
        self._verdicts[item.sha256] = item.verdict()
        self._submitted.discard(item.sha256)
        for waiter in self._waiting.pop(item.sha256, []):
            waiter.callback(None)

    def _apply(self, item: ImageItem) -> ImageItem:
        verdict = self._verdicts.get(item.sha256)
        if verdict is None:
            return item.fail("no_content")
        return item.apply_verdict(verdict)

    async def close_spider(self) -> None:
        await self.batcher.close()
        for waiters in self._waiting.values():   # rows whose bytes never arrived
            for waiter in waiters:
                waiter.callback(None)
        self._waiting.clear()
        self.executor.close()
