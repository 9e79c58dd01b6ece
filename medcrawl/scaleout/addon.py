"""The harvest-at-scale add-on: turns a few settings into the components that implement them.

Enabled by ``ADDONS = {"medcrawl.scaleout.addon.ScaleAddon": 0}`` in ``medcrawl/settings.py``:

* ``JOBDIR``: the crash-safe journal (``medcrawl.scaleout.journal``);
* ``MEDCRAWL_REDIS_URL``: the shared Redis frontier (``medcrawl.scaleout.redis``);
* ``-a js=true`` / ``MEDCRAWL_JS_DOMAINS``: Playwright for pages (``medcrawl.scaleout.js``).

The content index needs no add-on: the store, classify and dataset pipelines open it themselves
(``medcrawl.scaleout.contentindex``). Settings are set with the ``addon`` priority, so project and
command-line values still win. Every MEDCRAWL_* setting is validated here, before the crawl starts.
"""

from __future__ import annotations


from scrapy.settings import BaseSettings
from scrapy.crawler import Crawler

from medcrawl import config
from medcrawl.scaleout import js, redis


class ScaleAddon:
    """Scrapy add-on: crash-safe JOBDIR, Redis frontier, JavaScript pages; settings checked at start."""

    def __init__(self, crawler: Crawler | None = None):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ScaleAddon:
        return cls(crawler)

    def update_settings(self, settings: BaseSettings) -> None:
        config.validate(settings)
        spider = getattr(self.crawler, "spider", None)
        if config.RedisConfig.from_settings(settings).url:
            redis.configure(settings)
        elif settings.get("JOBDIR"):
            configure_resume(settings)
        if js.wanted(settings, spider):
            js.configure(settings, spider)


def configure_resume(settings: BaseSettings) -> None:
    """JOBDIR: journaled scheduler, completion-tracking spider middleware, unbuffered local feeds."""
    settings.set("SCHEDULER", "medcrawl.scaleout.journal.JournaledScheduler", "addon")
    settings.set("SPIDER_MIDDLEWARES", {**settings.getdict("SPIDER_MIDDLEWARES"),
                                        "medcrawl.scaleout.journal.ResumeMiddleware": 10},
                 max(settings.getpriority("SPIDER_MIDDLEWARES") or 0, 15))
    storages = settings.getdict("FEED_STORAGES")
    for scheme in ("", "file"):
        storages.setdefault(scheme, "medcrawl.scaleout.journal.DurableFileFeedStorage")
    settings.set("FEED_STORAGES", storages, max(settings.getpriority("FEED_STORAGES") or 0, 15))
