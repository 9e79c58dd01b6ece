"""Label ImageItems in batches: decode, validate, classify. Shared by the crawl and the CLI."""

from __future__ import annotations

import hashlib

from medcrawl.classifier import Classifier
from medcrawl.images import DEFAULT_MAX_PIXELS, ImageError
from medcrawl.items import ImageItem


def label_items(classifier: Classifier, items: list[ImageItem], min_size: int = 64,
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> list[ImageItem]:
    """Fill size, format, sha256 and verdict of every item that has a body, in place.

    Items already marked error/skipped are left as they are; every other item ends with
    status ``ok``, ``skipped`` or ``error`` and a specific reason. Blocking: call off the reactor.
    """
    ready, arrays = [], []
    for item in items:
        if item.status in ("error", "skipped"):
            continue
        if item.body is None:
            item.fail("no_content")
            continue
        item.sha256 = item.sha256 or hashlib.sha256(item.body).hexdigest()
        try:
            info, array = classifier.prepare(item.body, min_size=min_size, max_pixels=max_pixels)
        except ImageError as exc:
            item.fail(exc.reason, exc.status)
            continue
        item.width, item.height, item.format = info.width, info.height, info.format
        ready.append(item)
        arrays.append(array)
    for item, verdict in zip(ready, classifier.classify_arrays(arrays)):
        item.label, item.confidence = verdict.label, round(verdict.confidence, 6)
        item.medical_probability = round(verdict.medical_probability, 6)
        item.model, item.status, item.error = classifier.name, "ok", ""
    return items
