"""Harvest stats: count rows by outcome, log progress periodically and a summary at the end."""

from __future__ import annotations

import logging
import time
from typing import Any

from scrapy import signals
from scrapy.statscollectors import StatsCollector
from scrapy.utils.asyncio import create_looping_call

from medcrawl.config import Config
from medcrawl.items import ImageItem

logger = logging.getLogger(__name__)
PREFIX = "medcrawl/"


class HarvestStats:
    """Stats keys ``medcrawl/status/*``, ``medcrawl/label/*``, ``medcrawl/error/*``, ``medcrawl/skipped/*``.

    Rows are counted when scraped; ``medcrawl/images_found`` is counted by the spider and
    ``medcrawl/stored`` by the store, so the progress line shows what is still in the pipelines.
    """

    def __init__(self, stats: StatsCollector, interval: float):
        self.stats, self.interval = stats, interval
        self.task: Any = None
        self._last = (time.monotonic(), 0)

    @classmethod
    def from_crawler(cls, crawler: Any) -> HarvestStats:
        ext = cls(crawler.stats, Config.from_crawler(crawler).logstats_interval)
        crawler.signals.connect(ext.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Any) -> None:
        if self.interval:
            self.task = create_looping_call(self.log_progress)
            self.task.start(self.interval, now=False)

    def item_scraped(self, item: Any, response: Any, spider: Any) -> None:
        if not isinstance(item, ImageItem):
            return
        inc = self.stats.inc_value
        inc(f"{PREFIX}rows")
        inc(f"{PREFIX}source/{item.source_type}")
        inc(f"{PREFIX}status/{item.status or 'unknown'}")
        if item.status == "ok":
            inc(f"{PREFIX}label/{item.label}")
        elif item.status in ("error", "skipped"):
            inc(f"{PREFIX}{item.status}/{item.error or 'unknown'}")

    def summary(self) -> str:
        """One line: found, done, labels, skipped, errors, stored."""
        get = lambda key: self.stats.get_value(PREFIX + key, 0)  # noqa: E731
        return (f"{get('images_found')} images found, {get('rows')} rows done "
                f"({get('label/medical')} medical, {get('label/non-medical')} non-medical, "
                f"{get('status/skipped')} skipped, {get('status/error')} errors), "
                f"{get('stored')} files stored, {get('pdfs')} PDFs, {get('pages')} pages")

    def log_progress(self) -> None:
        now, rows = time.monotonic(), self.stats.get_value(f"{PREFIX}rows", 0)
        rate = (rows - self._last[1]) * 60.0 / max(now - self._last[0], 1e-9)
        self._last = (now, rows)
        logger.info("Harvest: %s; %.0f rows/min", self.summary(), rate)

    def reasons(self) -> str:
        """'error/http_404=3, skipped/too_small=2, ...' sorted by count."""
        counts = {k[len(PREFIX):]: v for k, v in self.stats.get_stats().items()
                  if k.startswith((f"{PREFIX}error/", f"{PREFIX}skipped/"))}
        return ", ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self.task is not None and self.task.running:
            self.task.stop()
        logger.info("Harvest finished (%s): %s", reason, self.summary())
        if self.reasons():
            logger.info("Harvest skipped/error reasons: %s", self.reasons())
