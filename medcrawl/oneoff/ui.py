"""The classification web page (Gradio): upload images, give a page or image URL, or a PDF."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402 - after the analytics switch
import pandas as pd  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from medcrawl.labels import MEDICAL  # noqa: E402
from medcrawl.model.classifier import Classifier  # noqa: E402
from medcrawl.oneoff.writers import MedicalExport, write_rows  # noqa: E402
from medcrawl.oneoff.fetch import Fetcher, FetchLimits  # noqa: E402
from medcrawl.oneoff.requestlimit import RequestSizeLimit  # noqa: E402
from medcrawl.oneoff.inputs import InputReader, is_url, labelled_batches  # noqa: E402
from medcrawl.extract.medical import MedicalOptions  # noqa: E402
from medcrawl.items import ROW_FIELDS, ImageItem  # noqa: E402
from medcrawl.oneoff import review  # noqa: E402
from medcrawl.oneoff.review import ReviewSettings  # noqa: E402

logger = logging.getLogger(__name__)
THUMB = 256
KEEP_RESULTS_S = 3600          # result files (CSV, zip) are kept this long
# The on-screen table shows the verdict columns first; the CSV keeps the feed order (ROW_FIELDS).
LEAD_FIELDS = ("image_url", "label", "confidence", "modality", "modality_confidence", "status", "error")
ALL = "all"                    # the gallery filter's "no filter"
TABLE_FIELDS = LEAD_FIELDS + tuple(f for f in ROW_FIELDS if f not in LEAD_FIELDS)


@dataclass(frozen=True)
class UiSettings:
    """Limits for a public deployment, read from the command line in one place."""

    max_images: int = 50                     # per request
    max_file_size: int = 20 * 1024 * 1024    # per uploaded file, enforced by Gradio
    max_request_size: int = 100 * 1024 * 1024  # per HTTP request (all its files), enforced here
    batch_size: int = 32
    min_size: int = 64
    request_timeout: float = 120.0           # all fetches of one request
    concurrency: int = 2                     # requests processed at once
    queue_size: int = 32                     # requests waiting beyond that
    fetch: FetchLimits = field(default_factory=FetchLimits)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    medical: MedicalOptions = field(default_factory=MedicalOptions)   # DICOM frames, pixel limit


@dataclass
class Result:
    """What one request shows: gallery, table, downloads and a one-line summary."""

    gallery: list                  # (thumbnail, caption)
    groups: list[str]              # per gallery image: its modality, else its label (the filter's choices)
    table: pd.DataFrame
    csv: str | None
    zip: str | None
    message: str


class ClassifyService:
    """Run one request's inputs through the same reader and labelling as `medcrawl classify`."""

    def __init__(self, classifier: Classifier, settings: UiSettings, workdir: Path):
        self.classifier, self.settings, self.workdir = classifier, settings, workdir
        self.fetcher = Fetcher(settings.fetch)

    def run(self, inputs: list[str], names: dict[str, str] | None = None) -> Result:
        """Classify inputs (paths or URLs); ``names`` maps upload paths to the names shown."""
        if not inputs:
            return empty_result("Nothing to classify: give at least one image, URL or PDF.")
        out = self._request_dir()
        reader = InputReader(self.fetcher, max_bytes=self.settings.fetch.max_bytes,
                             max_images=self.settings.max_images,
                             time_budget=self.settings.request_timeout,
                             medical=self.settings.medical)
        export = MedicalExport(out / "medical", self.classifier.threshold)
        items, thumbs = [], {}
        for batch in labelled_batches(self.classifier, reader.items(inputs), self.settings.batch_size,
                                      self.settings.min_size, preview=THUMB):
            for item in batch:
                _rename(item, names or {})
                export.add(item)
                if item.status == "ok":
                    thumbs[id(item)] = item.preview          # made while labelling: decoded once
                item.body = item.preview = None
                items.append(item)
        items.sort(key=_display_order)
        shown = [i for i in items if thumbs.get(id(i)) is not None]
        csv = write_rows(items, out / "medcrawl-results.csv")
        zipped = export.zip(out / "medical-images.zip") if export.files else None
        return Result([(thumbs[id(i)], caption(i)) for i in shown], [i.modality or i.label for i in shown],
                      table(items), str(csv), str(zipped) if zipped else None,
                      summary(items, reader.truncated, self.settings.max_images))

    def _request_dir(self) -> Path:
        """A fresh folder for one request's files; folders older than KEEP_RESULTS_S go."""
        now = time.time()
        for old in self.workdir.iterdir():
            if now - old.stat().st_mtime > KEEP_RESULTS_S:
                shutil.rmtree(old, ignore_errors=True)
        path = self.workdir / uuid.uuid4().hex
        path.mkdir()
        return path


def _rename(item: ImageItem, names: dict[str, str]) -> None:
    """Show an upload by its own file name, not the server's temporary path."""
    name = names.get(item.source_url)
    if name:
        item.image_url = name + item.image_url[len(item.source_url):]
        item.source_url = name


def _display_order(item: ImageItem):
    rank = {"ok": 0, "skipped": 1}.get(item.status, 2)
    return (rank, item.label != MEDICAL, -(item.confidence or 0.0))


def caption(item: ImageItem) -> str:
    """'medical 0.97 · ct · scan.png' (no modality for a non-medical image or a one-output model)."""
    name = item.image_url.rsplit("/", 1)[-1][:40]
    modality = f" · {item.modality}" if item.modality else ""
    return f"{item.label} {item.confidence:.2f}{modality} · {name}"


def table(items: list[ImageItem]) -> pd.DataFrame:
    rows = [{k: ("" if v is None else v) for k, v in i.row().items()} for i in items]
    return pd.DataFrame(rows, columns=list(TABLE_FIELDS))


def summary(items: list[ImageItem], truncated: bool, max_images: int) -> str:
    counts = Counter(i.label if i.status == "ok" else i.status for i in items)
    errors = Counter(i.error for i in items if i.status == "error")
    text = (f"**{len(items)} images:** {counts[MEDICAL]} medical, {counts['non-medical']} "
            f"non-medical, {counts['skipped']} skipped, {counts['error']} unreadable")
    if errors:
        text += " (" + ", ".join(f"{k}: {n}" for k, n in sorted(errors.items())) + ")"
    if truncated:
        text += f". Only the first {max_images} images were classified (limit per request)."
    return text


def empty_result(message: str) -> Result:
    return Result([], [], table([]), None, None, message)


def build_app(classifier: Classifier, settings: UiSettings) -> gr.Blocks:
    """The page: a Classify tab (three input tabs over one shared result area) and the Review tab."""
    workdir = Path(tempfile.mkdtemp(prefix="medcrawl-ui-"))
    handlers = Handlers(ClassifyService(classifier, settings, workdir))
    limit_note = (f"Up to {settings.max_images} images per request; uploads up to "
                  f"{settings.max_file_size // (1024 * 1024)} MB each. Model `{classifier.name}`, "
                  f"medical when probability ≥ {classifier.threshold:.2f}.")
    with gr.Blocks(title="medcrawl: medical image classifier", analytics_enabled=False,
                   delete_cache=(KEEP_RESULTS_S, KEEP_RESULTS_S)) as app:
        gr.Markdown(f"# medcrawl: medical or not?\n{limit_note}")
        with gr.Tabs():
            with gr.Tab("Classify", id="classify"):
                inputs = _input_tabs()
                outputs = _result_area()
            review.build_tab(app, settings.review, workdir / "review-thumbnails")
        inputs["upload_btn"].click(handlers.on_upload, inputs["uploads"], outputs, api_name="classify_uploads")
        inputs["url_btn"].click(handlers.on_url, inputs["url"], outputs, api_name="classify_url")
        inputs["url"].submit(handlers.on_url, inputs["url"], outputs, api_name=False)  # type: ignore[arg-type]
        inputs["pdf_btn"].click(handlers.on_pdf, [inputs["pdf"], inputs["pdf_url"]], outputs,
                                api_name="classify_pdf")
    app.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    return app


def _input_tabs() -> dict[str, Any]:
    """The Upload, URL and PDF tabs: their inputs and buttons by name."""
    with gr.Tabs():
        with gr.Tab("Upload", id="upload"):
            # Any file: DICOM files from scanners often have no extension; other types get a
            # skipped / unsupported_type row.
            uploads = gr.File(label="Images, DICOM or NIfTI files", file_count="multiple",
                              file_types=["file"], elem_id="uploads")
            upload_btn = gr.Button("Classify uploads", variant="primary", elem_id="run-upload")
        with gr.Tab("URL", id="url"):
            url = gr.Textbox(label="Page or image URL", placeholder="https://…",
                             elem_id="url", max_length=2048)
            url_btn = gr.Button("Classify URL", variant="primary", elem_id="run-url")
        with gr.Tab("PDF", id="pdf"):
            pdf = gr.File(label="PDF file", file_count="single", file_types=[".pdf"],
                          elem_id="pdf")
            pdf_url = gr.Textbox(label="…or PDF URL", placeholder="https://…/paper.pdf",
                                 elem_id="pdf-url", max_length=2048)
            pdf_btn = gr.Button("Classify PDF", variant="primary", elem_id="run-pdf")
    return dict(uploads=uploads, upload_btn=upload_btn, url=url, url_btn=url_btn, pdf=pdf,
                pdf_url=pdf_url, pdf_btn=pdf_btn)


def _result_area() -> list[gr.components.Component]:
    """Summary, gallery (and its filter), download buttons and table: every request's outputs,
    in Handlers' order."""
    message = gr.Markdown(elem_id="summary")
    shown = gr.State([])                     # the request's (thumbnail, caption, group) for the filter
    show = gr.Dropdown([ALL], value=ALL, label="Show", elem_id="gallery-filter",
                       info="all images, one modality, or one label")
    gallery = gr.Gallery(label="Images (medical first)", columns=6, fit_columns=False,
                         object_fit="contain", elem_id="gallery",
                         interactive=False)
    with gr.Row():
        csv_btn = gr.DownloadButton("Download table (CSV)", interactive=False,
                                    elem_id="download-csv")
        zip_btn = gr.DownloadButton("Download medical images (zip)", interactive=False,
                                    elem_id="download-zip")
    frame = gr.Dataframe(value=table([]), label="Results (one row per image)",
                         interactive=False, max_chars=48, pinned_columns=1,
                         elem_id="results", max_height=600)
    show.change(filter_gallery, [show, shown], gallery, api_name=False)  # type: ignore[arg-type]
    return [gallery, frame, csv_btn, zip_btn, message, shown, show]


def filter_gallery(choice: str, shown: list) -> list:
    """The gallery images of one group (a modality or a label), or all of them."""
    return [(image, text) for image, text, group in shown or [] if choice in (ALL, None) or group == choice]


class Handlers:
    """What the page's buttons do: one request through the service, answered as the result area."""

    def __init__(self, service: ClassifyService):
        self.service = service

    def respond(self, inputs: list[str], names: dict[str, str]) -> tuple:
        try:
            result = self.service.run(inputs, names)
        except Exception:  # noqa: BLE001 - the page must survive any single request
            logger.exception("request failed")
            result = empty_result("Internal error while classifying; see the server log.")
        groups = list(dict.fromkeys(result.groups))
        return (result.gallery, result.table,
                gr.DownloadButton(value=result.csv, interactive=result.csv is not None),
                gr.DownloadButton(value=result.zip, interactive=result.zip is not None),
                result.message, [(*shot, group) for shot, group in zip(result.gallery, result.groups)],
                gr.Dropdown(choices=[ALL, *groups], value=ALL))

    def on_upload(self, files):
        paths = [str(f) for f in files or []]
        return self.respond(paths, {p: os.path.basename(p) for p in paths})

    def on_url(self, text):
        text = (text or "").strip()
        if text and not is_url(text):
            return self.respond_error(f"Not an http(s) URL: `{text[:200]}`")
        return self.respond([text] if text else [], {})

    def on_pdf(self, file, text):
        inputs = [str(file)] if file else []
        text = (text or "").strip()
        if text and not is_url(text):
            return self.respond_error(f"Not an http(s) URL: `{text[:200]}`")
        names = {inputs[0]: os.path.basename(inputs[0])} if inputs else {}
        return self.respond(inputs + ([text] if text else []), names)

    @staticmethod
    def respond_error(text: str) -> tuple:
        result = empty_result(text)
        return (result.gallery, result.table, gr.DownloadButton(value=None, interactive=False),
                gr.DownloadButton(value=None, interactive=False), text, [], gr.Dropdown(choices=[ALL], value=ALL))


def serve(classifier: Classifier, settings: UiSettings, host: str = "127.0.0.1",
          port: int = 7860, block: bool = True) -> gr.Blocks:
    """Build and launch the page; with ``block=False`` return once it is listening."""
    app = build_app(classifier, settings)
    limit = Middleware(RequestSizeLimit, max_bytes=settings.max_request_size)
    app.launch(server_name=host, server_port=port, max_file_size=settings.max_file_size,
               app_kwargs={"middleware": [limit]},
               prevent_thread_lock=True, show_error=False, ssr_mode=False, share=False,
               quiet=True)                         # no hint about public share links: never offered here
    if block:
        print(f"medcrawl: web page on {app.local_url} (Ctrl+C stops it)", flush=True)
        app.block_thread()
    return app
