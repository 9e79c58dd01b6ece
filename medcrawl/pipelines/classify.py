"""Label rows medical / non-medical in batches on one worker thread; same bytes labelled once."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from scrapy.utils.asyncio import CallLaterResult, call_later
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.defer import Deferred, DeferredList

from medcrawl.classifier import Classifier, ModelError, load_shared
from medcrawl.config import Config
from medcrawl.items import ImageItem
from medcrawl.labeling import label_items
from medcrawl.worker import Worker

logger = logging.getLogger(__name__)

class Batcher:
    """Collect items into batches of ``size``; a partial batch waits at most ``max_wait`` seconds."""

    def __init__(self, label_batch: Callable[[list[ImageItem]], Any], size: int, max_wait: float,
                 worker: Worker):
        self.label_batch, self.size, self.max_wait, self.worker = label_batch, size, max_wait, worker
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
        """Send whatever is queued to the worker thread now."""
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
            await self.worker.run(self.label_batch, items)
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

    def __init__(self, classifier: Classifier, config: Config):
        self.worker = Worker("medcrawl-classify")
        label = functools.partial(label_items, classifier, min_size=config.min_size,
                                  max_pixels=config.max_pixels)
        self.batcher = Batcher(label, config.batch_size, config.batch_max_wait, self.worker)
        self._verdicts: dict[str, dict] = {}           # sha256 -> ImageItem.verdict()
        self._waiting: dict[str, list[Deferred]] = {}  # sha256 -> rows awaiting its verdict
        self._submitted: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Any) -> ClassifyPipeline:
        config = Config.from_settings(crawler.settings)
        try:
            classifier = load_shared(config.model, config.model_engine)
        except ModelError as exc:
            logger.critical("medcrawl cannot start: %s", exc)
            raise
        logger.info("Model %s loaded (%s engine, %dpx input, threshold %.3f)", classifier.name,
                    classifier.engine, classifier.input_size, classifier.threshold)
        return cls(classifier, config)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ImageItem) or item.status:
            return item
        if item.body is not None and not item.sha256:
            item.sha256 = hashlib.sha256(item.body).hexdigest()
        if not item.sha256:
            return item.fail("no_content")
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
        self.worker.close()
