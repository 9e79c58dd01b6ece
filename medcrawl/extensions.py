"""Harvest stats (rows by outcome, progress and summary lines), the HTML report at the end, and
start-up's objects kept out of the garbage collector's way."""

from __future__ import annotations

import gc
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.statscollectors import StatsCollector
from scrapy.utils.asyncio import create_looping_call
from scrapy.crawler import Crawler
from twisted.internet import threads
from twisted.internet.defer import Deferred

from medcrawl.config import Config
from medcrawl.items import ImageItem
from medcrawl.pipelines.store import store_uri

logger = logging.getLogger(__name__)
PREFIX = "medcrawl/"


class HarvestStats:
    """Stats keys ``medcrawl/status/*``, ``medcrawl/label/*``, ``medcrawl/modality/*``, ``medcrawl/error/*``,
    ``medcrawl/skipped/*``.

    Rows are counted when scraped; ``medcrawl/images_found`` is counted by the spider and
    ``medcrawl/stored`` by the store, so the progress line shows what is still in the pipelines.
    """

    def __init__(self, stats: StatsCollector, interval: float):
        self.stats, self.interval = stats, interval
        self.task: Any = None
        self._last = (time.monotonic(), 0)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> HarvestStats:
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
            if item.modality:
                inc(f"{PREFIX}modality/{item.modality}")
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
        return self.counts("error/", "skipped/")

    def modalities(self) -> str:
        """'ct=3, mri=2, ...': rows per modality, sorted by count."""
        return self.counts("modality/", keep_prefix=False)

    def counts(self, *prefixes: str, keep_prefix: bool = True) -> str:
        """'key=count, ...' of the stats under ``medcrawl/<prefix>``, most first."""
        counts = {k[len(PREFIX):] if keep_prefix else k.split("/", 2)[2]: v
                  for k, v in self.stats.get_stats().items()
                  if k.startswith(tuple(PREFIX + p for p in prefixes))}
        return ", ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self.task is not None and self.task.running:
            self.task.stop()
        logger.info("Harvest finished (%s): %s", reason, self.summary())
        if self.modalities():
            logger.info("Harvest modalities (rows): %s", self.modalities())
        if self.reasons():
            logger.info("Harvest skipped/error reasons: %s", self.reasons())


class HarvestReport:
    """With ``MEDCRAWL_REPORT=FILE``: keep this crawl's rows, and write `medcrawl report` to FILE at the end.

    The report runs as the ``medcrawl report`` command (the crawl never imports the one-off
    layer); its thumbnails come from a local IMAGES_STORE.
    """

    def __init__(self, path: Path, store: str | None):
        self.path, self.store = path, store
        self.rows: IO[str] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> HarvestReport:
        report = Config.from_crawler(crawler).report
        if not report:
            raise NotConfigured("MEDCRAWL_REPORT is not set")
        uri = store_uri(crawler.settings) or ""
        local = uri.removeprefix("file://") if "://" not in uri or uri.startswith("file://") else None
        ext = cls(Path(report), local or None)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".jsonl", delete=False,
                                                dir=self.path.parent, prefix=f".{self.path.stem}-rows-")

    def item_scraped(self, item: Any, response: Any, spider: Any) -> None:
        if isinstance(item, ImageItem) and self.rows is not None:
            self.rows.write(json.dumps(item.row(), ensure_ascii=False) + "\n")

    def spider_closed(self, spider: Any, reason: str) -> Deferred:
        assert self.rows is not None
        self.rows.close()
        return threads.deferToThread(self.write)

    def write(self) -> None:
        """Run `medcrawl report` on the rows (in a thread: the reactor stays free)."""
        assert self.rows is not None
        cmd = [sys.executable, "-m", "medcrawl", "report", self.rows.name, "-o", str(self.path), "-q"]
        proc = subprocess.run(cmd + (["--store", self.store] if self.store else []),
                              capture_output=True, text=True)
        Path(self.rows.name).unlink(missing_ok=True)
        if proc.returncode:
            logger.error("Harvest report not written: %s", proc.stderr.strip()[-2000:])
        else:
            logger.info("Harvest report: %s", self.path)


class FrozenStartup:
    """Start-up's objects (imported modules, the model, settings) frozen out of the garbage
    collector's sight while the spider runs (``gc.freeze``): its full collections then walk what
    the crawl made, not everything medcrawl imported (bench_crawl: their CPU time halved, about 2 %
    of the crawl's)."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FrozenStartup:
        ext = cls()
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self) -> None:
        gc.collect()
        gc.freeze()

    def spider_closed(self) -> None:
        gc.unfreeze()
