"""FilesPipeline's expiry rule (``FILES_EXPIRES`` days) on the content index, for the image store.

A URL is not downloaded again when the index fetched it recently, its content is labelled under
the crawl's model and its file is still in the store. An index entry whose file is gone (the
store was emptied, the index kept) is fetched again and stored anew. Stats:
``medcrawl/index/url_uptodate``, ``medcrawl/index/file_missing``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from scrapy.pipelines.media import MediaPipeline

from medcrawl.scaleout.contentindex import ContentIndex


class UrlExpiry:
    """Which image URLs the index already has, up to date and still stored."""

    def __init__(self, index: ContentIndex, holds: Callable[[str, MediaPipeline.SpiderInfo], Awaitable[bool]],
                 stats: Any, expires_days: float, model_name: Callable[[], str]):
        self.index, self.holds, self.stats, self.expires = index, holds, stats, expires_days
        self.model_name = model_name          # called when needed: the model loads on first need

    async def known(self, url: str, info: MediaPipeline.SpiderInfo) -> dict | None:
        """FilesPipeline's file info for an up-to-date URL, or None to download it."""
        entry = self.index.url_entry(url)
        if entry is None or entry.age_days() > self.expires:
            return None
        if self.index.verdict(entry.sha256, self.model_name()) is None:
            return None
        if not await self.holds(entry.path, info):
            return None
        self.stats.inc_value("medcrawl/index/url_uptodate")
        return {"url": url, "path": entry.path, "checksum": entry.sha256, "status": "uptodate"}
