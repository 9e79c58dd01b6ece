"""Downloader and spider middlewares that keep a crawl within its rules (docs/limits.md).

A refusal raises ``failures.Refused`` with the row reason it stands for, so image rows and the
page-error stats say why a URL was not fetched.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from weakref import WeakKeyDictionary

from scrapy import Request, signals
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from scrapy.crawler import Crawler
from twisted.internet.defer import Deferred

from medcrawl.addresses import CrawlAddressGuard
from medcrawl.config import LimitsConfig
from medcrawl.failures import ERROR, SKIPPED, Refused, failure_reason

logger = logging.getLogger(__name__)
REQUEST_FAILS_TOO = ("connection_refused", "dns_error")


class StrictRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's robots.txt check, made to hold for every request, also when robots.txt is unreachable.

    Scrapy hands a host's parsed robots.txt only to the first request that waited for it: the
    others that arrived while it was being fetched (a worker of a shared Redis frontier takes
    several at once) got nothing and went out unchecked. Here every waiter reads the parser once
    it is there. A robots.txt that cannot be fetched (timeout, reset connection, HTTP 5xx)
    forbids the whole host, as RFC 9309 asks; a missing one (HTTP 4xx) allows it, and so does a
    host that refuses connections or does not resolve (its requests fail with that reason).
    """

    async def robot_parser(self, request: Request) -> Any:
        netloc = urlparse_cached(request).netloc
        pending = self._parsers.get(netloc)
        if not isinstance(pending, Deferred):
            return await super().robot_parser(request)
        fired: Deferred = Deferred()

        def release(result: Any) -> Any:
            fired.callback(None)
            return result
        pending.addBoth(release)
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
        # Refused by an earlier middleware, or no server there at all: the request itself fails
        # the same way and says so. Anything else (a timeout, a reset) leaves robots.txt unknown.
        if isinstance(exc, IgnoreRequest) or failure_reason(exc)[0] in REQUEST_FAILS_TOO:
            super()._robots_error(exc, netloc)
        else:
            self._unreachable(netloc, f"{type(exc).__name__}: {exc}")

    def _unreachable(self, netloc: str, why: str) -> None:
        logger.warning("robots.txt of %s cannot be fetched (%s): nothing on that host is crawled",
                       netloc, why)
        self._stats.inc_value("medcrawl/robots_unreachable")
        pending, disallow = self._parsers[netloc], DisallowAll()
        self._parsers[netloc] = disallow  # type: ignore[assignment]   # a RobotParser by duck typing
        if isinstance(pending, Deferred):
            pending.callback(disallow)  # type: ignore[arg-type]


class DisallowAll:
    """The robots.txt parser of a host whose robots.txt could not be fetched."""

    def allowed(self, url: Any, user_agent: Any) -> bool:
        return False


class PrivateAddressMiddleware:
    """Refuse requests to non-public addresses (SSRF guard) on every hop, redirects included.

    Allowed: the hosts the user named (seeds, ``allowed_domains`` and their sub-domains), the
    addresses those resolve to, and ``MEDCRAWL_ALLOWED_NETWORKS``. The host is resolved through
    the crawl's own caching resolver, the one the connection uses, before anything is sent; the
    address a response came from is checked again, so a changed DNS answer cannot slip through.
    """

    def __init__(self, crawler: Crawler, allowed_networks: tuple):
        self.crawler, self.allowed = crawler, allowed_networks
        self._guard: CrawlAddressGuard | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PrivateAddressMiddleware:
        return cls(crawler, LimitsConfig.from_crawler(crawler).allowed_networks)

    @property
    def guard(self) -> CrawlAddressGuard:
        if self._guard is None:
            self._guard = CrawlAddressGuard.of_spider(self.crawler.spider, self.allowed, resolve)
        return self._guard

    async def process_request(self, request: Request) -> None:
        host = urlparse_cached(request).hostname or ""
        if refusal := await self.guard.refusal(host):      # unresolvable: the download reports dns_error
            self._refuse(request, host, *refusal)

    def process_response(self, request: Request, response: Response) -> Response:
        host = urlparse_cached(request).hostname or ""
        if response.ip_address is not None and host and not self.guard.is_named(host):
            if problem := self.guard.problem(str(response.ip_address)):
                self._refuse(request, host, problem, str(response.ip_address))
        return response

    def _refuse(self, request: Request, host: str, problem: str, address: str) -> None:
        logger.info("Refused %s: %s is a %s address (%s)", request.url, host, problem, address)
        self.crawler.stats.inc_value("medcrawl/private_address")
        raise Refused("private_address", ERROR,
                      f"{host} is a {problem} address; allow it with MEDCRAWL_ALLOWED_NETWORKS")


async def resolve(host: str) -> list[str]:
    """The IPv4/IPv6 address the crawl connects to for ``host`` (itself for an IP literal), or none."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    from twisted.internet import reactor

    try:
        return [await maybe_deferred_to_future(reactor.resolve(host))]  # type: ignore[arg-type]   # str accepted
    except Exception:  # noqa: BLE001 - resolution errors are reported by the download itself
        return []


class DownloadOutcomeMiddleware:
    """Name two outcomes Scrapy leaves vague: a streamed body cut at DOWNLOAD_MAXSIZE (``too_large``,
    not ``cancelled``) and a redirect back to a URL already in the chain (``redirect_loop``, at once)."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._received: WeakKeyDictionary[Request, int] = WeakKeyDictionary()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DownloadOutcomeMiddleware:
        mw = cls(crawler.settings.getint("DOWNLOAD_MAXSIZE"))
        crawler.signals.connect(mw.bytes_received, signal=signals.bytes_received)
        return mw

    def bytes_received(self, data: bytes, request: Request, spider: Any = None) -> None:
        self._received[request] = self._received.get(request, 0) + len(data)

    def process_request(self, request: Request) -> None:
        if request.url in (request.meta.get("redirect_urls") or ()):
            raise Refused("redirect_loop", ERROR, f"{request.url} redirects back to itself")

    def process_exception(self, request: Request, exception: Exception) -> None:
        limit = request.meta.get("download_maxsize", self.maxsize)
        if limit and self._received.pop(request, 0) > limit:
            raise Refused("too_large", ERROR, f"body over DOWNLOAD_MAXSIZE ({limit} bytes)")


class ShutdownMiddleware:
    """Spider middleware (outermost): after a first SIGTERM or Ctrl-C, take nothing more from the spider.

    Scrapy stops scheduling at the first signal but still drains what the spider yields for the
    responses it has, e.g. the 20,000 rows of one page, each an image download. The spider's
    output is cut off instead: rows already in the pipelines are finished and written, the rest
    of the page is not (nor marked done in a JOBDIR journal, so a resumed crawl takes it again).
    """

    def __init__(self, crawler: Crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ShutdownMiddleware:
        return cls(crawler)

    def process_spider_output(self, response: Response, result: Any, spider: Any = None) -> Any:
        for entry in result:
            if self._stopping(response):
                return
            yield entry

    async def process_spider_output_async(self, response: Response, result: Any,
                                          spider: Any = None) -> Any:
        async for entry in result:
            if self._stopping(response):
                return
            yield entry

    def _stopping(self, response: Response) -> bool:
        engine = self.crawler.engine
        if engine is None or engine.running:
            return False
        logger.info("Shutting down: the rest of %s is not taken", response.url)
        self.crawler.stats.inc_value("medcrawl/shutdown/pages_cut")
        return True
