"""Label ImageItems in batches: decode, validate, classify, find panels; cut a compound figure's
panels into rows of their own. Shared by the crawl and the CLI."""

from __future__ import annotations

import functools
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from medcrawl.labels import MEDICAL
from medcrawl.model.classifier import CPUS, Classifier, Prediction
from medcrawl.model.images import DEFAULT_MAX_PIXELS, ImageError, open_image, release_memory, to_rgb
from medcrawl.model.panels import find_panels, is_compound
from medcrawl.items import ImageItem

# What a row's label_source may say besides "model": its file format made it medical.
FORMAT_LABEL_SOURCES = ("dicom", "nifti")
# Threads that decode a batch's images side by side (Pillow releases the GIL while decoding).
DECODE_THREADS = min(4, CPUS)
# Images per model call: each decode thread decodes a chunk, then runs the model on it with its
# share of the cores (one LiteRT thread on a small batch costs the least CPU per image).
MODEL_CHUNK = 4
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def label_items(classifier: Classifier, items: list[ImageItem], min_size: int = 64,
                max_pixels: int | None = DEFAULT_MAX_PIXELS, preview: int = 0) -> list[ImageItem]:
    """Fill size, format, sha256, compound and verdict of every item that has a body, in place.

    Items already marked error/skipped are left as they are; every other item ends with
    status ``ok``, ``skipped`` or ``error`` and a specific reason. ``preview`` > 0 keeps a
    thumbnail that big in ``item.preview``. Blocking: call off the reactor.
    """
    todo = _to_label(items)
    prepare = functools.partial(_prepare, classifier, min_size=min_size, max_pixels=max_pixels,
                                preview=preview)
    size = max(1, min(MODEL_CHUNK, -(-len(todo) // DECODE_THREADS)))
    chunks = [todo[start:start + size] for start in range(0, len(todo), size)]
    threads = CPUS if len(chunks) < 2 else max(1, CPUS // DECODE_THREADS)
    refine = functools.partial(_refine_inputs, classifier, max_pixels=max_pixels)
    list(_decode_map(functools.partial(_label_chunk, classifier, prepare, refine, threads=threads), chunks))
    release_memory()                              # the batch's decode buffers, back to the system
    return items


def _to_label(items: list[ImageItem]) -> list[ImageItem]:
    """The items with bytes to label; those without fail ``no_content`` (error/skipped ones stay)."""
    todo = []
    for item in items:
        if item.status in ("error", "skipped"):
            continue
        if item.body is None:
            item.fail("no_content")
            continue
        todo.append(item)
    return todo


def _take(item: ImageItem, result) -> np.ndarray | None:
    """Fill the item from its decode: size, format, preview, panels; its model input, or None
    (the item failed: the ImageError's reason)."""
    if isinstance(result, ImageError):
        item.fail(result.reason, result.status)
        item.width, item.height = result.size or (item.width, item.height)
        item.modality, item.label_source = "", ""    # failed rows have no modality or label
        return None
    info, array = result
    item.width, item.height = info.width, info.height
    item.format = item.format or info.format  # a rendered DICOM/NIfTI frame keeps its file's format
    item.preview = info.preview
    item.compound, item.panel_boxes = is_compound(info.panels), info.panels
    return array


def _label_chunk(classifier: Classifier, prepare, refine, items: list[ImageItem], threads: int) -> None:
    """Decode a few items, then one model call (on ``threads`` cores) for those that decoded (and
    the cascade's second call for those the model is unsure of)."""
    ready = [(item, array) for item in items if (array := _take(item, prepare(item))) is not None]
    by_format = [item.label_source in FORMAT_LABEL_SOURCES for item, _ in ready]
    verdicts = classifier.classify_arrays([array for _, array in ready], by_format, threads,
                                          lambda rows: refine([ready[i][0] for i in rows]))
    for (item, _), verdict in zip(ready, verdicts):
        item.label, item.confidence = verdict.label, round(verdict.confidence, 6)
        item.label_source = item.label_source if item.label_source in FORMAT_LABEL_SOURCES else "model"
        item.medical_probability = round(verdict.medical_probability, 6)
        item.model, item.status, item.error = classifier.name, "ok", ""
        set_modality(item, verdict)


def _refine_inputs(classifier: Classifier, items: list[ImageItem], max_pixels: int | None) -> np.ndarray:
    """The items' images at the refine model's size (they decoded once already)."""
    assert classifier.refiner is not None
    return np.stack([classifier.refiner.prepare(item.body or b"", max_pixels=max_pixels)[1] for item in items])


def set_modality(item: ImageItem, verdict: Prediction) -> None:
    """The model's modality; one already set (from a DICOM tag) stays, the model's differing one
    goes to ``model_modality``."""
    confidence = None if verdict.modality_confidence is None else round(verdict.modality_confidence, 6)
    if verdict.label != MEDICAL:                  # non-medical rows have none, not even a tag's
        item.modality, item.modality_confidence, item.model_modality = "", None, ""
        return
    if not item.modality:
        item.modality, item.modality_confidence, item.model_modality = verdict.modality, confidence, ""
        return
    if item.modality_confidence is None:
        item.modality_confidence = 1.0            # the file says so
    differs = verdict.modality and verdict.modality != item.modality
    item.model_modality = verdict.modality if differs else ""


def _prepare(classifier: Classifier, item: ImageItem, min_size: int, max_pixels: int | None,
             preview: int = 0):
    """Fill the item's sha256; its (ImageInfo, model input), or the ImageError that rejects it."""
    item.content_sha256()
    try:
        return classifier.prepare(item.body or b"", min_size=min_size, max_pixels=max_pixels, preview=preview,
                                  panels=True)
    except ImageError as exc:
        return exc


def _decode_map(fn, items: list):
    """``fn`` over the items in order, on the shared decode threads when there are several."""
    global _pool
    if len(items) < 2 or DECODE_THREADS < 2:
        return map(fn, items)
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="medcrawl-decode")
    return _pool.map(fn, items)


def panel_rows(item: ImageItem, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> list[ImageItem]:
    """A compound figure's panels as rows of their own (``panel`` 1..N, ``<image_url>#panel=N``),
    each with the panel's pixels cut from the full-size image (JPEG stays JPEG, others PNG) and
    the figure's place and text; [] for a row that is not a compound figure with its bytes."""
    if not item.compound or item.panel is not None or item.body is None:
        return []
    try:
        image, info = open_image(item.body, max_pixels=max_pixels)
    except ImageError:
        return []
    boxes = item.panel_boxes or find_panels(to_rgb(image))
    fmt = "JPEG" if info.format == "JPEG" else "PNG"
    rows = []
    for number, box in enumerate(boxes, 1):
        out = io.BytesIO()
        to_rgb(image.crop(box)).save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        rows.append(ImageItem(**{name: getattr(item, name) for name in PANEL_INHERITS},
                              image_url=f"{item.image_url}#panel={number}", panel=number,
                              body=out.getvalue()))
    return rows


# What a panel row takes from its figure's row: where it was found and the figure's text.
PANEL_INHERITS = ("source_url", "source_type", "pdf_page", "frame", "alt", "title", "caption",
                  "page_title", "license", "license_url")
