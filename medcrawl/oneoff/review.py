"""The Review tab: go through a harvest least confident first and correct it (DIR/corrections.csv).

A harvest is a dataset folder (corrections move its files at once) or a feed plus its store
(corrections are kept in the store folder). Keys: m medical, n non-medical, u not a usable image;
the selection then moves to the next image.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from medcrawl.corrections import LABELS, MEDICAL, UNCERTAIN, UNUSABLE
from medcrawl.oneoff.harvest import Harvest, HarvestError, Image, source_link, thumbnails
from medcrawl.labels import MODALITIES as MODEL_MODALITIES, OTHER_MODALITY

PAGE_SIZE = 48
GALLERY_CAPTION = 80        # characters of an image's caption under its thumbnail
ANY = "any"
MODALITIES = (*MODEL_MODALITIES, OTHER_MODALITY)
KEEP = "keep"
BUTTONS = {MEDICAL: ("Medical [m]", "review-medical"), "non-medical": ("Non-medical [n]", "review-non-medical"),
           UNUSABLE: ("Not a usable image [u]", "review-unusable")}
KEYS_JS = """() => {
  if (window.medcrawlReviewKeys) return;
  window.medcrawlReviewKeys = true;
  const keys = {m: "review-medical", n: "review-non-medical", u: "review-unusable"};
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || !keys[e.key]) return;
    if (e.target.closest && e.target.closest("input, textarea, select, [contenteditable=true]")) return;
    const button = document.getElementById(keys[e.key]);
    if (!button || !button.offsetParent) return;          // the Review tab is not shown
    e.preventDefault();
    button.click();
  });
}"""


@dataclass(frozen=True)
class ReviewSettings:
    """Which harvests the tab may open (those under ``root``) and the one it opens on load."""

    root: Path = Path(".")
    path: str = ""
    store: str = ""


@dataclass(frozen=True)
class Filters:
    """What the grid shows: a label (or ``uncertain``), modality, site and a confidence range."""

    label: str = ANY
    modality: str = ANY
    site: str = ANY
    low: float = 0.0
    high: float = 1.0
    unreviewed: bool = False

    def keep(self, image: Image) -> bool:
        label_ok = (self.label == ANY or (image.uncertain if self.label == UNCERTAIN
                                          else image.label == self.label))
        return (label_ok and self.modality in (ANY, image.modality) and self.site in (ANY, image.row["site"])
                and self.low <= image.confidence <= self.high
                and not (self.unreviewed and image.correction is not None))


class ReviewService:
    """Open harvests, list what the filters keep, record decisions; thumbnails cached in ``workdir``."""

    def __init__(self, settings: ReviewSettings, workdir: Path):
        self.settings, self.workdir = settings, workdir
        self.root = settings.root.resolve()

    def open(self, path: str, store: str = "") -> Harvest:
        """Open a harvest under the allowed root, or raise HarvestError saying why not."""
        paths = [self._inside(path)] + ([self._inside(store)] if store.strip() else [])
        return Harvest.open(*paths)

    def _inside(self, text: str) -> Path:
        path = Path(text.strip()).resolve()             # relative to where the server runs
        if not text.strip() or not path.is_relative_to(self.root):
            raise HarvestError(f"give a path inside {self.root}")
        return path

    @staticmethod
    def view(harvest: Harvest, filters: Filters) -> list[Image]:
        """The images the filters keep, least confident first."""
        kept = [i for i in harvest.images.values() if filters.keep(i)]
        return sorted(kept, key=lambda i: (i.confidence, i.sha256))

    def gallery(self, images: list[Image]) -> list[tuple[str, str]]:
        thumbs = thumbnails(images, self.workdir)
        return [(str(thumbs[i.sha256]), caption(i) + (f"\n{_cut(i.caption)}" if i.caption else ""))
                for i in images if i.sha256 in thumbs]

    @staticmethod
    def mark(harvest: Harvest, image: Image, label: str, modality: str) -> None:
        """Record and apply a decision (the harvest shows it at its next refresh)."""
        if label == MEDICAL and modality == KEEP:
            modality = image.modality or "other"
        harvest.dataset.correct(image.sha256, label, modality if label == MEDICAL else "",
                                old_label=image.label, old_modality=image.modality)


def caption(image: Image) -> str:
    """'✓ medical 0.62 · ct' (✓: reviewed; ?: in uncertain/)."""
    mark = "✓ " if image.correction else ("? " if image.uncertain else "")
    return f"{mark}{image.label} {image.confidence:.2f}" + (f" · {image.modality}" if image.modality else "")


def markdown_text(text: str) -> str:
    """Text from a web page shown as itself in Markdown: HTML escaped, Markdown marks backslashed."""
    return re.sub(r"([\\`*_{}\[\]()#+!|~-])", r"\\\1", html.escape(" ".join(text.split())))


def _cut(text: str, limit: int = GALLERY_CAPTION) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def details(image: Image | None, harvest: Harvest | None) -> str:
    """The selected image's rows, links and decisions, as Markdown."""
    if image is None or harvest is None:
        return "Click an image to select it, then press **m**, **n** or **u** (or the buttons)."
    row, (source, text) = image.row, source_link(image.row)
    lines = [f"**{caption(image)}** · model's medical probability {row['medical_probability'] or 0:.2f}"
             + (" · in uncertain/" if image.uncertain else ""),
             f"[image]({row['image_url']}) · [{text}]({source})"
             f" · {row['site']} · seen {image.occurrences}×", f"`{image.sha256}`"]
    if image.caption:
        lines.append(f"*{markdown_text(image.caption)}*")
    if image.correction:
        c = image.correction
        lines.append(f"Reviewed {c.when}: {c.old_label} {c.old_modality} → {c.new_label} {c.new_modality}")
    return "  \n".join(lines)


def build_tab(app: gr.Blocks, settings: ReviewSettings, workdir: Path) -> None:
    """The Review tab (inside an open ``gr.Tabs``): its components, state and events."""
    handlers = Handlers(ReviewService(settings, workdir))
    ui = _layout(settings, handlers.service.root)
    harvest, page, shown, selected = gr.State(None), gr.State(0), gr.State([]), gr.State(None)
    filters = [ui["label"], ui["modality"], ui["site"], ui["low"], ui["high"], ui["unreviewed"]]
    outputs = [ui["gallery"], ui["progress"], ui["info"], page, shown, selected]
    opening = dict(fn=handlers.on_open, inputs=[ui["path"], ui["store"], *filters, page],
                   outputs=[harvest, ui["site"], *outputs])
    ui["open"].click(**opening)
    ui["path"].submit(**opening)
    app.load(None, js=KEYS_JS)
    if settings.path:
        app.load(**opening)
    gr.on([ui["label"].input, ui["modality"].input, ui["site"].input, ui["low"].change,
           ui["high"].change, ui["unreviewed"].input], handlers.turn(None), [harvest, *filters, page],
          outputs, trigger_mode="always_last")
    ui["prev"].click(handlers.turn(-1), [harvest, *filters, page], outputs)
    ui["next"].click(handlers.turn(+1), [harvest, *filters, page], outputs)
    ui["gallery"].select(handlers.on_select, [harvest, shown], [ui["info"], selected])
    for name, button in ui["buttons"].items():
        button.click(handlers.mark(name), [harvest, shown, selected, ui["new_modality"], *filters, page],
                     outputs)


def _layout(settings: ReviewSettings, root: Path) -> dict:
    """The tab's components by name."""
    ui: dict = {}
    with gr.Tab("Review", id="review", elem_id="review-tab"):
        with gr.Row():
            ui["path"] = gr.Textbox(settings.path, label=f"Dataset folder or feed (under {root})",
                                    elem_id="review-path", scale=3)
            ui["store"] = gr.Textbox(settings.store, label="Store folder (with a feed)",
                                     elem_id="review-store", scale=2)
            ui["open"] = gr.Button("Open", elem_id="review-open", scale=0)
        with gr.Row():
            ui["label"] = gr.Dropdown([ANY, *LABELS, UNCERTAIN], value=ANY, label="Label", elem_id="review-label")
            ui["modality"] = gr.Dropdown([ANY, *MODALITIES], value=ANY, label="Modality",
                                         elem_id="review-modality-filter")
            ui["site"] = gr.Dropdown([ANY], value=ANY, label="Site", elem_id="review-site")
            ui["low"] = gr.Slider(0, 1, 0, step=0.01, label="Confidence from", elem_id="review-low")
            ui["high"] = gr.Slider(0, 1, 1, step=0.01, label="to", elem_id="review-high")
            ui["unreviewed"] = gr.Checkbox(label="Not reviewed only", elem_id="review-unreviewed")
        ui["progress"] = gr.Markdown(elem_id="review-progress")
        with gr.Row(equal_height=True):
            ui["buttons"] = {name: gr.Button(text, elem_id=eid) for name, (text, eid) in BUTTONS.items()}
            ui["new_modality"] = gr.Dropdown([KEEP, *MODALITIES], value=KEEP, label="Modality when medical",
                                             elem_id="review-modality")
        ui["info"] = gr.Markdown(details(None, None), elem_id="review-selected")
        ui["gallery"] = gr.Gallery(columns=6, allow_preview=False, object_fit="contain", height="auto",
                                   label="Least confident first", elem_id="review-gallery", interactive=False)
        with gr.Row():
            ui["prev"] = gr.Button("◀ Previous page", elem_id="review-prev", size="sm")
            ui["next"] = gr.Button("Next page ▶", elem_id="review-next", size="sm")
    return ui


class Handlers:
    """What the tab's events do; every answer is (gallery, progress, details, page, shown, selected)."""

    def __init__(self, service: ReviewService):
        self.service = service

    def render(self, h: Harvest | None, lab, mod, sit, lo, hi, unrev, page_no: int, sel: int | None = None):
        if h is None:
            return None, "Open a dataset folder or a feed to review it.", details(None, None), 0, [], None
        h.refresh()
        images = self.service.view(h, Filters(lab, mod, sit, lo, hi, unrev))
        pages = max(1, math.ceil(len(images) / PAGE_SIZE))
        page_no = min(max(page_no, 0), pages - 1)
        chunk = images[page_no * PAGE_SIZE:(page_no + 1) * PAGE_SIZE]
        sel = sel if sel is not None and sel < len(chunk) else None
        text = (f"**Reviewed {h.reviewed()} / {len(h.images)}** images · {len(images)} match the "
                f"filters · page {page_no + 1} of {pages}")
        return (gr.Gallery(value=self.service.gallery(chunk), selected_index=sel), text,
                details(chunk[sel] if sel is not None else None, h), page_no, [i.sha256 for i in chunk], sel)

    def on_open(self, path: str, store: str, *values):
        """Open a harvest; (harvest, site choices, *render)."""
        try:
            h = self.service.open(path, store)
        except (HarvestError, OSError) as exc:
            return (None, gr.Dropdown(choices=[ANY], value=ANY), None, f"Cannot open: {exc}",
                    details(None, None), 0, [], None)
        lab, mod, _, lo, hi, unrev, _ = values
        sites = sorted({i.row["site"] for i in h.images.values()})
        return h, gr.Dropdown(choices=[ANY, *sites], value=ANY), *self.render(h, lab, mod, ANY, lo, hi, unrev, 0)

    @staticmethod
    def on_select(h: Harvest | None, ids: list[str], evt: gr.SelectData):
        sel = evt.index if isinstance(evt.index, int) and evt.index < len(ids) else None
        return details(h.images.get(ids[sel]) if h is not None and sel is not None else None, h), sel

    def turn(self, delta: int | None):
        """Show another page (``delta``), or the first page (None: the filters changed)."""
        return lambda h, *values: self.render(h, *values[:-1], 0 if delta is None else values[-1] + delta)

    def mark(self, label: str):
        """Record ``label`` for the selected image; the selection moves on to the next image."""
        def mark(h: Harvest | None, ids: list[str], sel: int | None, new_modality: str, *values):
            if h is None or sel is None or sel >= len(ids):
                return gr.skip(), gr.skip(), "Select an image first.", gr.skip(), gr.skip(), gr.skip()
            if h.dataset is None:
                return gr.skip(), gr.skip(), "Give the store folder to keep corrections.", *[gr.skip()] * 3
            image = h.images[ids[sel]]
            self.service.mark(h, image, label, new_modality)
            h.refresh()
            return self.render(h, *values, sel + 1 if Filters(*values[:6]).keep(image) else sel)
        return mark
