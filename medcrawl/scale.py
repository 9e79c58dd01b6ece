"""The harvest-at-scale add-on: turns a few settings into the components that implement them.

Enabled by ``ADDONS = {"medcrawl.scale.ScaleAddon": 0}`` in ``medcrawl/settings.py``:

* always: the store / classify / dataset pipelines backed by the content index
  (``medcrawl.incremental``; with ``MEDCRAWL_CONTENT_INDEX=off`` they act as the plain ones,
  except that the dataset manifest still never repeats a row);
* ``JOBDIR``: the crash-safe journal (``medcrawl.resume``);
* ``MEDCRAWL_REDIS_URL``: the shared Redis frontier (``medcrawl.distributed``);
* ``-a js=true`` / ``MEDCRAWL_JS_DOMAINS``: Playwright for pages (``medcrawl.js``).

Settings are set with the ``addon`` priority, so project and command-line values still win.
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy.settings import BaseSettings

from medcrawl import distributed, js

logger = logging.getLogger(__name__)

INDEXED_PIPELINES = {
    "medcrawl.pipelines.store.ImageStorePipeline": "medcrawl.incremental.IndexedStorePipeline",
    "medcrawl.pipelines.classify.ClassifyPipeline": "medcrawl.incremental.IndexedClassifyPipeline",
    "medcrawl.pipelines.dataset.DatasetPipeline": "medcrawl.incremental.IncrementalDatasetPipeline",
}


class ScaleAddon:
    """Scrapy add-on: incremental pipelines, crash-safe JOBDIR, Redis frontier, JavaScript pages."""

    def __init__(self, crawler: Any = None):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> ScaleAddon:
        return cls(crawler)

    def update_settings(self, settings: BaseSettings) -> None:
        spider = getattr(self.crawler, "spider", None)
        use_indexed_pipelines(settings)
        if settings.get("MEDCRAWL_REDIS_URL"):
            distributed.configure(settings)
        elif settings.get("JOBDIR"):
            configure_resume(settings)
        if js.wanted(settings, spider):
            js.configure(settings, spider)


def use_indexed_pipelines(settings: BaseSettings) -> None:
    """Swap the crawl's pipelines for their index-backed subclasses, at the same priorities."""
    pipelines = settings.getdict("ITEM_PIPELINES")
    swapped = {INDEXED_PIPELINES.get(name, name) if isinstance(name, str) else name: order
               for name, order in pipelines.items()}
    if swapped != pipelines:
        settings.set("ITEM_PIPELINES", swapped, max(settings.getpriority("ITEM_PIPELINES") or 0, 15))


def configure_resume(settings: BaseSettings) -> None:
    """JOBDIR: journaled scheduler, completion-tracking spider middleware, unbuffered local feeds."""
    settings.set("SCHEDULER", "medcrawl.resume.JournaledScheduler", "addon")
    settings.set("SPIDER_MIDDLEWARES", {**settings.getdict("SPIDER_MIDDLEWARES"),
                                        "medcrawl.resume.ResumeMiddleware": 10},
                 max(settings.getpriority("SPIDER_MIDDLEWARES") or 0, 15))
    storages = settings.getdict("FEED_STORAGES")
    for scheme in ("", "file"):
        storages.setdefault(scheme, "medcrawl.resume.DurableFileFeedStorage")
    settings.set("FEED_STORAGES", storages, max(settings.getpriority("FEED_STORAGES") or 0, 15))
