"""DICOM and NIfTI files rendered during a crawl: one set of options and one thread per crawler.

The spider (files it follows) and the store (files behind an image URL) share them.
"""

from __future__ import annotations

import weakref

from scrapy import signals
from scrapy.crawler import Crawler

from medcrawl.config import Config, MedicalConfig
from medcrawl.executor import OneThreadExecutor
from medcrawl.extract.medical import MedicalOptions, medical_rows
from medcrawl.items import ImageItem

_RENDERERS: weakref.WeakKeyDictionary[Crawler, MedicalRenderer] = weakref.WeakKeyDictionary()


class MedicalRenderer:
    """Render medical files to rows off the reactor, with the crawl's MEDCRAWL_DICOM_* options."""

    def __init__(self, options: MedicalOptions):
        self.options = options
        self.thread = OneThreadExecutor("medcrawl-medical")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MedicalRenderer:
        """The crawler's renderer, made on first use; its thread ends with the spider."""
        if crawler not in _RENDERERS:
            medical, config = MedicalConfig.from_crawler(crawler), Config.from_crawler(crawler)
            renderer = cls(MedicalOptions(medical.dicom_frames, config.max_pixels, medical.keep_original,
                                          config.min_size))
            crawler.signals.connect(renderer.thread.close, signal=signals.spider_closed)
            _RENDERERS[crawler] = renderer
        return _RENDERERS[crawler]

    async def rows(self, kind: str, data: bytes, url: str, source_url: str, source_type: str,
                   pdf_page: int | None = None) -> list[ImageItem]:
        """One row per rendered frame (or one error row) of a ``dicom`` / ``nifti`` file."""
        return await self.thread.run(medical_rows, kind, data, url, source_url, source_type,
                                     self.options, pdf_page)
