"""Crawl-trap limits: link depth, pages per site and repeated URL patterns (a spider middleware).

A URL's pattern is its host and path with every run of digits written ``N``, and its query
keys (values with digits written ``N``): ``/page/17`` and ``/page/18`` share ``/page/N``,
``cal?d=5`` and ``cal?d=6`` share ``cal?d=N``. Endless generators (``/page/N`` linking to
``N+1``) and calendars (``?d=N`` linking to ``N±1``) make long chains of pages that link to
their own pattern; the chain limit stops them while a listing linking many articles is untouched.
Requests over a limit are dropped, counted (``medcrawl/trap/<limit>``) and named in the log
when the crawl closes, with the setting that raises the limit.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from scrapy import Request, signals
from scrapy.http import Response
from scrapy.crawler import Crawler

from medcrawl.config import LimitsConfig

logger = logging.getLogger(__name__)
DIGITS = re.compile(r"\d+")
CHAIN_KEY = "medcrawl_pattern_chain"
SETTINGS = {"depth": "DEPTH_LIMIT", "pages_per_site": "MEDCRAWL_MAX_PAGES_PER_SITE",
            "pattern_chain": "MEDCRAWL_MAX_PATTERN_CHAIN", "pattern_urls": "MEDCRAWL_MAX_PATTERN_URLS"}


def url_pattern(url: str) -> str:
    """``http://h/page/17?d=3&x=a`` -> ``h/page/N?d=N&x=a``."""
    parts = urlsplit(url)
    query = sorted((k, DIGITS.sub("N", v)) for k, v in parse_qsl(parts.query, keep_blank_values=True))
    text = f"{parts.netloc.lower()}{DIGITS.sub('N', parts.path)}"
    return text + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")


class CrawlTrapMiddleware:
    """Drop followed requests past DEPTH_LIMIT, the pages-per-site limit or a pattern limit."""

    def __init__(self, crawler: Crawler, limits: dict[str, int]):
        self.crawler, self.stats, self.limits = crawler, crawler.stats, limits
        self.per_site: Counter[str] = Counter()
        self.per_pattern: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlTrapMiddleware:
        config = LimitsConfig.from_crawler(crawler)
        limits = {"depth": crawler.settings.getint("DEPTH_LIMIT"),
                  "pages_per_site": config.max_pages_per_site,
                  "pattern_chain": config.max_pattern_chain,
                  "pattern_urls": config.max_pattern_urls}
        mw = cls(crawler, limits)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        return mw

    async def process_spider_output_async(self, response: Response, result: AsyncIterator[Any],
                                          spider: Any = None) -> AsyncIterator[Any]:
        self.parsed(response)
        async for entry in result:
            if not isinstance(entry, Request) or self.admit(entry, response):
                yield entry

    def process_spider_output(self, response: Response, result: Iterable[Any],
                              spider: Any = None) -> Iterable[Any]:
        self.parsed(response)
        for entry in result:
            if not isinstance(entry, Request) or self.admit(entry, response):
                yield entry

    def parsed(self, response: Response) -> None:
        """Count a page against its site and its pattern."""
        self.per_site[urlsplit(response.url).netloc.lower()] += 1
        self.per_pattern[url_pattern(response.url)] += 1

    def admit(self, request: Request, response: Response) -> bool:
        """Check a followed request against the limits; False when it must be dropped."""
        pattern = url_pattern(request.url)
        chain = response.meta.get(CHAIN_KEY, 0) + 1 if pattern == url_pattern(response.url) else 0
        request.meta[CHAIN_KEY] = chain
        site = urlsplit(request.url).netloc.lower()
        over = self._over(response.meta.get("depth", 0) + 1, site, pattern, chain)
        if over:
            self.stats.inc_value(f"medcrawl/trap/{over}")
            self.examples.setdefault(over, request.url)
            return False
        return True

    def _over(self, depth: int, site: str, pattern: str, chain: int) -> str | None:
        """The name of the first limit this request would pass, or None."""
        checks = (("depth", depth), ("pages_per_site", self.per_site[site] + 1),
                  ("pattern_chain", chain), ("pattern_urls", self.per_pattern[pattern] + 1))
        for name, value in checks:
            limit = self.limits.get(name) or 0
            if limit and value > limit:
                return name
        return None

    def spider_closed(self, spider: Any, reason: str) -> None:
        for name, url in self.examples.items():
            logger.warning("Crawl limit %s=%d stopped %d requests (first: %s); raise %s to go further",
                           SETTINGS[name], self.limits[name],
                           self.stats.get_value(f"medcrawl/trap/{name}", 0), url, SETTINGS[name])
