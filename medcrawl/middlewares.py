"""Downloader and spider middlewares that keep a crawl within its rules (docs/limits.md).

A refusal raises ``failures.Refused`` with the row reason it stands for, so image rows and the
page-error stats say why a URL was not fetched.
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy import Request
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred

from medcrawl.failures import SKIPPED, Refused

logger = logging.getLogger(__name__)


class StrictRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's robots.txt check, made to hold for every request, also when robots.txt is unreachable.

    Scrapy hands a host's parsed robots.txt only to the first request that waited for it: the
    others that arrived while it was being fetched (a worker of a shared Redis frontier takes
    several at once) got nothing and went out unchecked. Here every waiter reads the parser once
    it is there. A robots.txt that cannot be fetched (connection failure, HTTP 5xx) forbids the
    whole host, as RFC 9309 asks; a missing one (HTTP 4xx) allows it.
    """

    async def robot_parser(self, request: Request) -> Any:
        netloc = urlparse_cached(request).netloc
        pending = self._parsers.get(netloc)
        if not isinstance(pending, Deferred):
            return await super().robot_parser(request)
        fired: Deferred = Deferred()
        pending.addBoth(lambda result: (fired.callback(None), result)[1])
        await maybe_deferred_to_future(fired)
        return self._parsers[netloc]

    def process_request_2(self, rp: Any, request: Request) -> None:
        try:
            super().process_request_2(rp, request)
        except IgnoreRequest:
            raise Refused("robots_txt", SKIPPED, "Forbidden by robots.txt") from None

    async def _parse_robots(self, response: Response, netloc: str, request: Request) -> None:
        if response.status >= 500:
            self._unreachable(netloc, f"HTTP {response.status}")
        else:
            await super()._parse_robots(response, netloc, request)

    def _robots_error(self, exc: Exception, netloc: str) -> None:
        if isinstance(exc, IgnoreRequest):       # refused by an earlier middleware: not our call
            super()._robots_error(exc, netloc)
        else:
            self._unreachable(netloc, f"{type(exc).__name__}: {exc}")

    def _unreachable(self, netloc: str, why: str) -> None:
        logger.warning("robots.txt of %s cannot be fetched (%s): nothing on that host is crawled",
                       netloc, why)
        self._stats.inc_value("medcrawl/robots_unreachable")
        pending, self._parsers[netloc] = self._parsers[netloc], DisallowAll()
        if isinstance(pending, Deferred):
            pending.callback(self._parsers[netloc])


class DisallowAll:
    """The robots.txt parser of a host whose robots.txt could not be fetched."""

    def allowed(self, url: Any, user_agent: Any) -> bool:
        return False
