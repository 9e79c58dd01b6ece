"""The harvesting spider: follow a site's pages, emit one row per image on them and in its PDFs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

from scrapy import Request, Spider, signals
from scrapy.http import HtmlResponse, Response
from scrapy.crawler import Crawler
from twisted.python.failure import Failure

from medcrawl.config import Config
from medcrawl.extract.html import extract_page, url_kind
from medcrawl.extract.medical import medical_format
from medcrawl.failures import failure_reason
from medcrawl.items import ImageItem
from medcrawl.extract.pdf import looks_like_pdf, pdf_error_row, pdf_links, pdf_rows
from medcrawl.executor import OneThreadExecutor
from medcrawl.rendering import MedicalRenderer

FALSE = ("0", "false", "no", "off")


class SiteSpider(Spider):
    """``scrapy crawl site -a start_urls=URL[,URL] [-a allowed_domains=..] [-a max_depth=N]``.

    Pages are followed within ``allowed_domains`` (default: the seeds' hosts, without ``www.``) up to
    ``max_depth`` link hops; images and PDFs of a visited page are fetched from any host.
    """

    name = "site"
    config: Config
    pdf_thread: OneThreadExecutor
    renderer: MedicalRenderer

    def __init__(self, start_urls: str | list[str] | None = None, start_urls_file: str | None = None,
                 allowed_domains: str | list[str] | None = None, max_depth: str | int | None = None,
                 follow: str | bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.start_urls = read_seeds(start_urls, start_urls_file)
        if not self.start_urls:
            raise ValueError("no start URLs: pass -a start_urls=URL[,URL...] or -a start_urls_file=FILE")
        self.allowed_domains = split_list(allowed_domains) or seed_domains(self.start_urls)
        follows = str(follow).strip().lower() not in FALSE
        self.max_depth = int(max_depth) if max_depth not in (None, "") else None
        if not follows:
            self.max_depth = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> SiteSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.config = Config.from_crawler(crawler)
        spider.pdf_thread = OneThreadExecutor("medcrawl-pdf")
        crawler.signals.connect(spider.pdf_thread.close, signal=signals.spider_closed)
        spider.renderer = MedicalRenderer.from_crawler(crawler)
        return spider

    async def start(self) -> AsyncIterator[Request]:
        for url in self.start_urls:
            yield Request(url, callback=self.parse, errback=self.page_failed)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        """Dispatch on content: PDF, DICOM/NIfTI, image, or HTML page (anything else is ignored)."""
        content_type = header(response, "Content-Type").lower()
        if looks_like_pdf(response.body, content_type):
            async for row in self.pdf_rows(response):
                yield row
        elif kind := medical_format(response.body, response.url, content_type):
            async for row in self.medical_file_rows(response, kind):
                yield row
        elif content_type.startswith("image/"):
            referer = header(response.request, "Referer") if response.request else ""
            yield self.found(ImageItem(image_url=response.url, source_url=referer or response.url,
                                       body=response.body))
        elif isinstance(response, HtmlResponse):
            for request_or_row in self.page_rows(response):
                yield request_or_row

    def page_rows(self, response: HtmlResponse) -> Iterator[Any]:
        """Rows for the page's images, requests for its PDFs and (depth allowing) its links."""
        self.crawler.stats.inc_value("medcrawl/pages")
        links = extract_page(response.text, response.url)
        for url in links.images:
            yield self.found(ImageItem(image_url=url, source_url=response.url, **links.row_text(url)))
        media_meta = {"allow_offsite": True} if self.config.offsite_media else {}
        for url in links.pdfs:
            yield response.follow(url, self.parse_pdf, errback=self.pdf_failed, meta=media_meta)
        for url in links.medical:
            yield response.follow(url, self.parse_medical, errback=self.medical_failed,
                                  meta=media_meta)
        if self.max_depth is None or response.meta.get("depth", 0) < self.max_depth:
            for url in links.links:
                yield response.follow(url, self.parse, errback=self.page_failed)

    async def parse_pdf(self, response: Response) -> AsyncIterator[ImageItem]:
        """A response to a PDF link: its images, or one error row if it is no PDF."""
        if looks_like_pdf(response.body, header(response, "Content-Type")):
            async for row in self.pdf_rows(response):
                yield row
        else:
            yield self.found(pdf_error_row(response.url, "not_a_pdf"))

    async def pdf_rows(self, response: Response) -> AsyncIterator[ImageItem]:
        """One row per distinct embedded image (bytes in hand), or one error or no_images row for the PDF."""
        self.crawler.stats.inc_value("medcrawl/pdfs")
        rows = await self.pdf_thread.run(pdf_rows, response.body, urldefrag(response.url)[0],
                                         self.config.pdf_max_images, self.config.max_pixels)
        rows.reverse()
        while rows:       # pop, so bytes of rows already processed can be freed
            yield self.found(rows.pop())
        links = await self.pdf_thread.run(pdf_links, response.body, urldefrag(response.url)[0])
        for request_or_row in self.pdf_link_rows(response, links):
            yield request_or_row

    def pdf_link_rows(self, response: Response, links: list[tuple[int, str]]) -> Iterator[Any]:
        """A PDF's links, followed like a page's: images and medical files from any host, PDFs
        and pages within the allowed domains and depth. The PDF is their rows' source."""
        url = urldefrag(response.url)[0]
        media_meta = {"allow_offsite": True} if self.config.offsite_media else {}
        deeper = self.max_depth is None or response.meta.get("depth", 0) < self.max_depth
        for page, link in links:
            kind = url_kind(link)
            if kind == "image":
                yield self.found(ImageItem(image_url=link, source_url=url, source_type="pdf",
                                           pdf_page=page))
            elif kind == "medical":
                yield Request(link, self.parse_medical, errback=self.medical_failed,
                              meta={**media_meta, "source_type": "pdf", "pdf_page": page})
            elif deeper and kind == "pdf":
                yield Request(link, self.parse_pdf, errback=self.pdf_failed)
            elif deeper:
                yield Request(link, self.parse, errback=self.page_failed)

    async def parse_medical(self, response: Response) -> AsyncIterator[ImageItem]:
        """A response to a DICOM/NIfTI link: one row per rendered frame, or one error row."""
        kind = medical_format(response.body, response.url, header(response, "Content-Type"))
        async for row in self.medical_file_rows(response, kind or "dicom"):
            yield row

    async def medical_file_rows(self, response: Response, kind: str) -> AsyncIterator[ImageItem]:
        """Rows of a DICOM/NIfTI file, rendered off the reactor."""
        self.crawler.stats.inc_value(f"medcrawl/{kind}_files")
        referer = header(response.request, "Referer") if response.request else ""
        rows = await self.renderer.rows(kind, response.body, response.url, referer or response.url,
                                        response.meta.get("source_type", "html"), response.meta.get("pdf_page"))
        for row in rows:
            yield self.found(row)

    def medical_failed(self, failure: Failure) -> Iterator[ImageItem]:
        """A DICOM/NIfTI file that could not be downloaded: one row with the reason."""
        request = failure.request  # type: ignore[attr-defined]   # set by Scrapy on errback failures
        row = ImageItem(image_url=request.url, source_url=header(request, "Referer") or request.url,
                        source_type=request.meta.get("source_type", "html"),
                        pdf_page=request.meta.get("pdf_page"))
        yield self.found(row.fail(*failure_reason(failure.value)))

    def pdf_failed(self, failure: Failure) -> Iterator[ImageItem]:
        """A PDF that could not be downloaded: one row with the reason."""
        request = failure.request  # type: ignore[attr-defined]   # set by Scrapy on errback failures
        yield self.found(pdf_error_row(request.url, *failure_reason(failure.value)))

    def page_failed(self, failure: Failure) -> None:
        """Pages that fail are counted, not fatal."""
        reason, _ = failure_reason(failure.value)
        self.crawler.stats.inc_value(f"medcrawl/page_error/{reason}")

    def found(self, item: ImageItem) -> ImageItem:
        """Count a row leaving the spider (an image occurrence, or an unreadable PDF)."""
        self.crawler.stats.inc_value("medcrawl/images_found")
        return item


def header(message: Response | Request, name: str) -> str:
    """A request's or response's header as text ('' when absent)."""
    return (message.headers.get(name) or b"").decode("latin-1")


def split_list(value: str | list[str] | None) -> list[str]:
    """'a, b,,c' or ['a', 'b'] -> ['a', 'b', 'c']."""
    parts = value.split(",") if isinstance(value, str) else (value or [])
    return [p.strip() for p in parts if p and p.strip()]


def seed_domains(urls: list[str]) -> list[str]:
    """The seeds' host names without a leading ``www.`` (so the bare domain is allowed too)."""
    hosts = {(urlsplit(u).hostname or "").removeprefix("www.") for u in urls}
    return sorted(hosts - {""})


def read_seeds(start_urls: str | list[str] | None, start_urls_file: str | None) -> list[str]:
    """Seeds from the comma list and the file (one URL a line, # comments), de-duplicated."""
    seeds = split_list(start_urls)
    if start_urls_file:
        lines = Path(start_urls_file).read_text(encoding="utf-8").splitlines()
        seeds += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return list(dict.fromkeys(seeds))
