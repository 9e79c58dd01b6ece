"""Download row images with Scrapy's FilesPipeline and keep each distinct content once.

With a content index (``medcrawl.scaleout.contentindex``; a null index when off) a re-run does
not download URLs fetched less than ``FILES_EXPIRES`` days ago whose content is labelled
(``pipelines/expiry.py``), and stores only content the index does not have or whose file is gone
from the store. DICOM/NIfTI files behind an image URL are rendered by ``medcrawl.rendering``.
Stats: ``medcrawl/stored``, ``medcrawl/store/duplicate``, ``medcrawl/index/file_missing``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections import deque
from io import BytesIO
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.http import Request, Response
from scrapy.http.request import NO_CALLBACK
from scrapy.pipelines.files import FilesPipeline
from scrapy.pipelines.media import FileInfoOrError, MediaPipeline
from scrapy.settings import BaseSettings
from scrapy.statscollectors import StatsCollector
from scrapy.utils.defer import ensure_awaitable, maybe_deferred_to_future
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from medcrawl.config import Config, LoadedModel
from medcrawl.extract.medical import medical_format, original_extension
from medcrawl.failures import MediaFailure, failure_reason
from medcrawl.items import ImageItem
from medcrawl.model.images import content_extension
from medcrawl.pipelines.expiry import UrlExpiry
from medcrawl.rendering import MedicalRenderer
from medcrawl.scaleout.contentindex import ContentIndex, shared_index

logger = logging.getLogger(__name__)

def store_uri(settings: BaseSettings) -> str | None:
    """IMAGES_STORE, or FILES_STORE when that was set with a higher priority (e.g. on -s)."""
    images, files = settings.get("IMAGES_STORE"), settings.get("FILES_STORE")
    if files and (settings.getpriority("FILES_STORE") or 0) > (settings.getpriority("IMAGES_STORE") or 0):
        return files
    return images or files


class ContentStore:
    """Content-addressed storage in any Scrapy files store: ``full/ab/<sha256>.<ext>``, once.

    Content counts as stored when this process stored it, or when the index has it (or another
    worker holds its claim) and its file is in the store.
    """

    def __init__(self, store: Any, stats: StatsCollector, index: ContentIndex):
        self.store, self.stats, self.index = store, stats, index
        self._stored: set[str] = set()
        self._warned = False

    @staticmethod
    def key(data: bytes, ext: str | None = None) -> tuple[str, str]:
        """(sha256, store path) of some bytes; the path is empty for non-image content."""
        sha = hashlib.sha256(data).hexdigest()
        ext = ext or content_extension(data)
        return sha, (f"full/{sha[:2]}/{sha}.{ext}" if ext else "")

    async def is_stored(self, sha256: str, path: str, info: MediaPipeline.SpiderInfo) -> bool:
        """Called right before storing: claims the content for this worker when it is new."""
        if sha256 in self._stored:
            return True
        if self.index.claim(sha256):                   # new content: this worker stores it
            return False
        if self.index.stored_path(sha256) is None:     # another worker is storing it right now
            return True
        return await self.holds(path, info)            # indexed: stored, unless its file is gone

    async def holds(self, path: str, info: MediaPipeline.SpiderInfo) -> bool:
        """The store has ``path``; a file the index lists but the store lacks is counted and warned about."""
        if path and await ensure_awaitable(self.store.stat_file(path, info)):
            return True
        self.stats.inc_value("medcrawl/index/file_missing")
        if not self._warned:
            self._warned = True
            logger.warning("The content index lists %s but the store has no such file: contents whose "
                           "files are gone are fetched and stored again", path)
        return False

    def mark_stored(self, sha256: str, stored: bool = True) -> None:
        (self._stored.add if stored else self._stored.discard)(sha256)
        if not stored:
            self.index.release(sha256)

    async def persist(self, data: bytes, info: MediaPipeline.SpiderInfo,
                      ext: str | None = None) -> tuple[str, str]:
        """Store bytes unless this content is already stored; return (sha256, path)."""
        sha, path = self.key(data, ext)
        if not path:
            self.stats.inc_value("medcrawl/store/not_an_image")
        elif await self.is_stored(sha, path, info):
            self.stats.inc_value("medcrawl/store/duplicate")
        else:
            self.mark_stored(sha)
            try:
                await ensure_awaitable(self.store.persist_file(path, BytesIO(data), info))
            except Exception as exc:
                self.mark_stored(sha, False)
                logger.error("Cannot store %s: %s", path, exc)
                raise MediaFailure("store_failed") from None
            self.stats.inc_value("medcrawl/stored")
            self.stats.inc_value("medcrawl/stored_bytes", len(data))
        return sha, path


class InFlightLimit:
    """At most ``limit`` rows between the start of their download and the end of the pipelines.

    Downloads can outpace the classifier; without a limit the bytes of every row waiting for it
    pile up (hundreds of MB on a large site). While rows wait here the engine is paused, so no
    new pages (and rows) are fetched until they drain. A row leaves on item_scraped/dropped/error.
    """

    def __init__(self, limit: int, crawler: Crawler | None = None):
        self.limit, self.count, self.crawler = limit, 0, crawler
        self._holders: set[int] = set()
        self._waiters: deque[Deferred] = deque()
        self._paused = False

    async def enter(self, item: Any) -> None:
        while self.count >= self.limit:
            self._pause(True)
            waiter: Deferred = Deferred()
            self._waiters.append(waiter)
            await maybe_deferred_to_future(waiter)
        self.count += 1
        self._holders.add(id(item))

    def leave(self, item: Any) -> None:
        if id(item) in self._holders:
            self._holders.discard(id(item))
            self.count -= 1
            if self._waiters:
                self._waiters.popleft().callback(None)
            else:
                self._pause(False)

    def _pause(self, pause: bool) -> None:
        engine = getattr(self.crawler, "engine", None)
        if engine is not None and pause != self._paused:
            self._paused = pause
            (engine.pause if pause else engine.unpause)()


class ImageStorePipeline(FilesPipeline):
    """Fetch each row's ``image_url`` (or take its ``body``) and store the original bytes by content.

    Rows keep ``body`` for the classifier; failed downloads become rows with a specific reason.
    """

    MEDIA_NAME = "image"

    def __init__(self, store_uri: str, *, crawler: Crawler):
        super().__init__(store_uri, crawler=crawler)
        self.config = Config.from_crawler(crawler)
        self.stats = crawler.stats
        self.index = shared_index(crawler, store_uri)
        self.content = ContentStore(self.store, crawler.stats, self.index)
        self.in_flight = InFlightLimit(4 * self.config.batch_size
                                       + crawler.settings.getint("CONCURRENT_REQUESTS"), crawler)
        for signal in (signals.item_scraped, signals.item_dropped, signals.item_error):
            crawler.signals.connect(self.in_flight.leave, signal=signal)
        self.renderer = MedicalRenderer.from_crawler(crawler)
        self.expiry = UrlExpiry(self.index, self.content.holds, crawler.stats, self.expires,
                                lambda: self.model_name)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ImageStorePipeline:
        cls._update_stores(crawler.settings)
        return cls(store_uri(crawler.settings) or "", crawler=crawler)

    async def process_item(self, item: Any) -> Any:  # type: ignore[override]   # Scrapy 2.14: no spider argument
        if not isinstance(item, ImageItem) or item.status:
            return item
        if item.panel is None:                      # a panel's figure holds the place (pipelines/panels.py)
            await self.in_flight.enter(item)
        if item.body is not None:
            try:
                item.sha256, item.path = await self.content.persist(item.body, self.spiderinfo)
                if item.original is not None:       # only with MEDCRAWL_DICOM_KEEP_ORIGINAL
                    await self.content.persist(item.original, self.spiderinfo,
                                               original_extension(item.format, item.original))
            except MediaFailure as exc:
                item.fail(exc.reason, exc.status)
            item.original = None
            return item
        return await super().process_item(item)

    def get_media_requests(self, item: ImageItem, info: MediaPipeline.SpiderInfo) -> list[Request]:
        headers = {"Referer": item.source_url} if item.source_url else {}
        meta = {"allow_offsite": True} if self.config.offsite_media else {}
        return [Request(item.image_url, callback=NO_CALLBACK, headers=headers, meta=meta)]

    @functools.cached_property
    def model_name(self) -> str:
        """The model's ``name@version`` (loaded once per process, shared with the classifier)."""
        return LoadedModel.from_crawler(self.crawler).classifier.name

    async def media_to_download(self, request: Request, info: MediaPipeline.SpiderInfo, *,  # type: ignore[override]
                                item: Any = None) -> dict | None:   # a coroutine, which MediaPipeline awaits
        """A URL the index has up to date and stored is not downloaded (``UrlExpiry``)."""
        return await self.expiry.known(request.url, info)

    async def media_downloaded(self, response: Response, request: Request,
                               info: MediaPipeline.SpiderInfo, *, item: Any = None) -> Any:
        if response.status != 200:
            raise MediaFailure(f"http_{response.status}")
        if not response.body:
            raise MediaFailure("empty")
        content_type = (response.headers.get("Content-Type") or b"").decode("latin-1")
        kind = medical_format(response.body, response.url, content_type)
        if kind and isinstance(item, ImageItem):
            response = response.replace(body=await self.medical_frame(item, kind, response.body, info))
        return await super().media_downloaded(response, request, info, item=item)

    async def medical_frame(self, item: ImageItem, kind: str, data: bytes,
                            info: MediaPipeline.SpiderInfo) -> bytes:
        """A DICOM/NIfTI file behind an image URL: the row becomes its first rendered frame."""
        rows = await self.renderer.rows(kind, data, item.image_url, item.source_url, item.source_type,
                                        item.pdf_page)
        first = rows[0]
        if first.status:
            raise MediaFailure(first.error)
        if len(rows) > 1:
            logger.warning("%s %s is linked as an image: its row has frame %s of %d frames",
                           kind.upper(), item.image_url, first.frame, len(rows))
            self.stats.inc_value("medcrawl/medical/frames_not_in_rows", len(rows) - 1)
        item.frame, item.format, item.modality = first.frame, first.format, first.modality
        if first.original is not None:
            await self.content.persist(first.original, info, original_extension(kind, data))
        return first.body or b""

    def media_failed(self, failure: Any, request: Request, info: MediaPipeline.SpiderInfo) -> Any:
        reason, status = failure_reason(failure.value)
        log = logger.debug if status == "skipped" else logger.info
        log("Image %s not fetched: %s", request.url, reason, extra={"spider": info.spider})
        raise MediaFailure(reason, status)

    def file_path(self, request: Request, response: Response | None = None,
                  info: MediaPipeline.SpiderInfo | None = None, *, item: Any = None) -> str:
        """``full/ab/<sha256>.<ext>`` of the downloaded bytes ('' when they are not an image)."""
        if response is None:
            raise ValueError("content-addressed paths need the downloaded bytes")
        return self.content.key(response.body)[1]

    async def file_downloaded(self, response: Response, request: Request,
                              info: MediaPipeline.SpiderInfo, *, item: Any = None) -> str:
        """Store the bytes by content, hand them to the row, return their sha256."""
        if isinstance(item, ImageItem):
            item.body = response.body
        sha, path = await self.content.persist(response.body, info)
        self.index.record_url(request.url, sha, path)
        return sha

    def item_completed(self, results: list[FileInfoOrError], item: Any,
                       info: MediaPipeline.SpiderInfo) -> Any:
        for _, value in results:
            if isinstance(value, Failure):
                item.fail(*failure_reason(value.value))
            else:
                item.sha256, item.path = value["checksum"], value["path"]
        return item
