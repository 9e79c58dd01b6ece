"""A distributed harvest: N crawl processes share one frontier in Redis (scrapy-redis).

``MEDCRAWL_REDIS_URL=redis://host:6379/0`` makes a crawl a worker: the scheduler queue and the
duplicate filter live in Redis under ``MEDCRAWL_HARVEST`` (default ``medcrawl:<spider>``), so
every request is fetched by exactly one worker; the content index moves to the same Redis so
each new image is stored and labelled by exactly one worker. A worker closes once the shared
frontier has been empty for ``MAX_IDLE_TIME_BEFORE_CLOSE`` seconds (scrapy-redis' setting).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured
from scrapy.settings import BaseSettings
from scrapy.crawler import Crawler

from medcrawl.config import RedisConfig

logger = logging.getLogger(__name__)
DEFAULT_IDLE_CLOSE = 20


def configure(settings: BaseSettings) -> None:
    """Switch scheduler, dupe filter and idle handling to the shared Redis frontier."""
    config = RedisConfig.from_settings(settings)
    harvest = config.harvest
    values = {
        "REDIS_URL": config.url,
        "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "SCHEDULER_QUEUE_KEY": f"{harvest}:requests",
        "SCHEDULER_DUPEFILTER_KEY": f"{harvest}:dupefilter",
        "SCHEDULER_PERSIST": True,           # a worker that stops must not wipe the others' frontier
        "SCHEDULER_IDLE_BEFORE_CLOSE": 0,    # never block the reactor on an empty queue
    }
    for name, value in values.items():
        settings.set(name, value, "addon")
    settings.set_in_component_priority_dict("EXTENSIONS", IdleClose, 510)


class IdleClose:
    """Keep an idle worker open while other workers may still add requests; close it after a quiet spell.

    The engine asks about every 5 seconds while idle; any download resets the clock.
    """

    def __init__(self, max_idle: float):
        self.max_idle = max_idle
        self.idle_since: float | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> IdleClose:
        if not RedisConfig.from_crawler(crawler).url:
            raise NotConfigured
        ext = cls(crawler.settings.getfloat("MAX_IDLE_TIME_BEFORE_CLOSE", DEFAULT_IDLE_CLOSE))
        crawler.signals.connect(ext.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(ext.busy, signal=signals.request_reached_downloader)
        return ext

    def busy(self, *args: Any, **kwargs: Any) -> None:
        self.idle_since = None

    def spider_idle(self, spider: Any) -> None:
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
            logger.info("Shared frontier empty; waiting up to %.0f s for other workers' requests",
                        self.max_idle)
        if now - self.idle_since < self.max_idle:
            raise DontCloseSpider
