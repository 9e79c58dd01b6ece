"""JavaScript pages, opt-in: scrapy-playwright driving the system Chromium (no browser download).

``-a js=true`` renders every page; ``MEDCRAWL_JS_DOMAINS=a.org,b.org`` renders only pages on
those domains (sub-domains included). Only page requests (the spider's ``parse`` callback) go
to the browser; images, PDFs and robots.txt stay on Scrapy's own HTTP handler. Without either
switch the Playwright download handlers are not installed at all, so plain crawls pay nothing.
The browser never fetches images, media or fonts (the crawl downloads images itself), nor
anything the page's scripts ask of an internal address (the crawl's private-address guard,
``medcrawl.addresses``), and scrapy-playwright closes every page after reading its content, on
errors too.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any
from urllib.parse import urlsplit

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    NotConfigured,
)
from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings
from scrapy.utils.misc import load_object
from scrapy.utils.url import url_is_from_any_domain
from scrapy.crawler import Crawler

from medcrawl.addresses import CrawlAddressGuard
from medcrawl.config import JsConfig, LimitsConfig

logger = logging.getLogger(__name__)

HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
DEFAULT_CHROMIUM = JsConfig.chromium
PAGE_CALLBACKS = frozenset({"parse"})
TRUE = ("1", "true", "yes", "on")
SKIPPED_RESOURCES = frozenset({"image", "media", "font"})
# Chromium's net::ERR_* codes -> the Scrapy exceptions the rest of the crawl already understands.
BROWSER_ERRORS = (
    ("ERR_CONNECTION_REFUSED", DownloadConnectionRefusedError),
    ("ERR_NAME_NOT_RESOLVED", CannotResolveHostError),
    ("ERR_TIMED_OUT", DownloadTimeoutError),
    ("Timeout ", DownloadTimeoutError),
    ("net::ERR_", DownloadFailedError),
)


def wanted(settings: BaseSettings, spider: Any = None) -> bool:
    """True when ``-a js=true``, ``MEDCRAWL_JS=True`` or ``MEDCRAWL_JS_DOMAINS`` asks for rendering."""
    return render_all(settings, spider) or JsConfig.from_settings(settings).wanted


def render_all(settings: BaseSettings, spider: Any = None) -> bool:
    return str(getattr(spider, "js", "")).strip().lower() in TRUE or JsConfig.from_settings(settings).render_all


def configure(settings: BaseSettings, spider: Any = None) -> None:
    """Install the Playwright handlers, the system Chromium and the page-routing middleware."""
    handlers = settings.getdict("DOWNLOAD_HANDLERS")
    handlers.update({"http": HANDLER, "https": HANDLER})
    settings.set("DOWNLOAD_HANDLERS", handlers, "addon")
    chromium = JsConfig.from_settings(settings).chromium
    launch = {"executable_path": chromium, "headless": True, **settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")}
    settings.set("PLAYWRIGHT_LAUNCH_OPTIONS", launch, "addon")
    settings.set("PLAYWRIGHT_BROWSER_TYPE", "chromium", "addon")
    guard = CrawlAddressGuard.of_spider(spider, LimitsConfig.from_settings(settings).allowed_networks,
                                        resolve_all)
    abort = BrowserRequestFilter(guard, settings.get("PLAYWRIGHT_ABORT_REQUEST") or skip_media)
    # over a project's own predicate too, which ``abort`` asks after the guard
    settings.set("PLAYWRIGHT_ABORT_REQUEST", abort,
                 max(settings.getpriority("PLAYWRIGHT_ABORT_REQUEST") or 0, SETTINGS_PRIORITIES["addon"]))
    # -a js=true reaches the middleware as MEDCRAWL_JS; the value already includes any -s MEDCRAWL_JS.
    settings.set("MEDCRAWL_JS", render_all(settings, spider), "cmdline")
    settings.add_to_list("RETRY_EXCEPTIONS", "playwright.async_api.Error")
    settings.set_in_component_priority_dict("DOWNLOADER_MIDDLEWARES", JsPagesMiddleware, 540)


def skip_media(request: Any) -> bool:
    """PLAYWRIGHT_ABORT_REQUEST: the browser does not download images, media or fonts."""
    return request.resource_type in SKIPPED_RESOURCES


class BrowserRequestFilter:
    """PLAYWRIGHT_ABORT_REQUEST: refuse what the crawl's guard refuses, then ask ``then`` (default: skip media).

    Every request of a rendered page (its scripts' fetches, frames, scripts, styles) is judged on
    the addresses its host resolves to before Chromium sends it. A redirect Chromium follows is
    not shown to this hook (a Playwright limit, docs/limits.md).
    """

    def __init__(self, guard: CrawlAddressGuard, then: Any):
        self.guard, self.then = guard, then

    async def __call__(self, request: Any) -> bool:
        if self.then is skip_media and skip_media(request):
            return True
        host = urlsplit(request.url).hostname or ""
        if refusal := await self.guard.refusal(host):
            logger.info("Refused %s in the browser: %s is a %s address (%s)", request.url, host, *refusal)
            return True
        result = load_object(self.then)(request)
        return bool(await result) if asyncio.iscoroutine(result) else bool(result)


async def resolve_all(host: str) -> list[str]:
    """Every address ``host`` resolves to (Chromium may connect to any of them); none when it does not."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class JsPagesMiddleware:
    """Send page requests (callback ``parse``) for the JS domains through Playwright.

    The page is read once the network has been idle (``MEDCRAWL_JS_WAIT``, default
    ``networkidle``), so images inserted by scripts after ``load`` are in the HTML. Ordered
    before RetryMiddleware, so browser errors reach it after retries.
    """

    def __init__(self, render_all: bool, domains: list[str], wait_state: str):
        self.render_all, self.domains, self.wait_state = render_all, domains, wait_state

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> JsPagesMiddleware:
        config = JsConfig.from_crawler(crawler)
        if not config.wanted:
            raise NotConfigured
        return cls(config.render_all, list(config.domains), config.wait)

    def process_request(self, request: Any, spider: Any = None) -> None:
        if "playwright" in request.meta or not self.renders(request):
            return None
        from scrapy_playwright.page import PageMethod

        request.meta["playwright"] = True
        wait = PageMethod("wait_for_load_state", self.wait_state)
        request.meta.setdefault("playwright_page_methods", [wait])
        return None

    def process_exception(self, request: Any, exception: Exception, spider: Any = None) -> None:
        """A browser navigation error (after RetryMiddleware gave up) as the matching Scrapy error."""
        if request.meta.get("playwright") and type(exception).__module__.startswith("playwright"):
            message = str(exception)
            for marker, error in BROWSER_ERRORS:
                if marker in message:
                    raise error(message.splitlines()[0]) from exception
        return None

    def renders(self, request: Any) -> bool:
        """A page request (not an image, PDF or robots.txt) on a JS domain."""
        if getattr(request.callback, "__name__", None) not in PAGE_CALLBACKS:
            return False
        return self.render_all or url_is_from_any_domain(request.url, self.domains) \
            if urlsplit(request.url).hostname else False
