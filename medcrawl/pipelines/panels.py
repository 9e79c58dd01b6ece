"""With MEDCRAWL_SPLIT_PANELS, a compound figure's panels become rows of their own.

An item pipeline returns one item, so the panels are sent to the item pipelines as new items
(``Scraper.start_itemproc_async``, the engine's own way in for an item, as for a spider's): each
is stored, labelled, put in the dataset and exported like any image; the figure's row (``compound``
true) goes on once its panels' rows are through, so a resumed crawl (JOBDIR), which counts a page
done when its rows are, never loses the panels of a figure whose row it wrote. Panels are cut on
a thread of their own, from the full-size image; they do not take a place of their own in the
store's in-flight limit (their figure holds one), so a figure waiting for them cannot block them.
Stats: ``medcrawl/panels/figures`` (figures split), ``medcrawl/panels/rows``.
"""

from __future__ import annotations

from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.defer import DeferredList

from medcrawl.config import Config
from medcrawl.executor import OneThreadExecutor
from medcrawl.items import ImageItem
from medcrawl.model.labelling import panel_rows


class PanelPipeline:
    """Send the panels of each compound figure through the item pipelines as rows."""

    def __init__(self, crawler: Any, max_pixels: int | None):
        self.crawler, self.max_pixels = crawler, max_pixels
        self.thread = OneThreadExecutor("medcrawl-panels")
        crawler.signals.connect(self.thread.close, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Any) -> PanelPipeline:
        config = Config.from_crawler(crawler)
        if not config.split_panels:
            raise NotConfigured("MEDCRAWL_SPLIT_PANELS is off")
        return cls(crawler, config.max_pixels)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ImageItem) or not item.compound or item.panel is not None:
            return item
        rows = await self.thread.run(panel_rows, item, self.max_pixels)
        if rows:
            self.crawler.stats.inc_value("medcrawl/panels/figures")
            self.crawler.stats.inc_value("medcrawl/panels/rows", len(rows))
        scraper = self.crawler.engine.scraper
        done = [deferred_from_coro(scraper.start_itemproc_async(row, response=None)) for row in rows]
        await maybe_deferred_to_future(DeferredList(done))
        return item
