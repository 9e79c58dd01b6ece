"""With MEDCRAWL_SPLIT_PANELS, a compound figure's panels become rows of their own.

An item pipeline returns one item, so the panels are sent to the item pipelines as new items
(``Scraper.start_itemproc_async``, the engine's own way in for an item, as for a spider's): each
is stored, labelled, put in the dataset and exported like any image, while the figure's row goes
on (``compound`` true). Panels are cut on a thread of their own, from the full-size image.
Stats: ``medcrawl/panels/figures`` (figures split), ``medcrawl/panels/rows``.
"""

from __future__ import annotations

from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro

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
        for row in rows:       # counted by the scraper at once, so the crawl waits for them
            deferred_from_coro(scraper.start_itemproc_async(row, response=None))
        return item
