"""Offline demo: build a small site from package images, serve it on 127.0.0.1, crawl it, summarise.

``python -m medcrawl.oneoff.demo [--out DIR] [--pages N]`` needs no network and no shared data: the
images come from installed packages (``bash scripts/install_sample_packages.sh``), the site is
served by the standard library, and the crawl is the real ``scrapy crawl site``.
"""

from __future__ import annotations

import argparse
import csv
import html
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from medcrawl.oneoff.localserver import folder_handler, serving

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = Path("demo-output")
IMAGES_PER_SOURCE = 2
SITE_MAX_SIDE = 480
# A 1x1 transparent GIF: the placeholder lazy-loading pages put in ``src``.
PLACEHOLDER = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
STYLES = ("img", "srcset", "lazy", "picture", "background")
SVG_LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60">'
            '<rect width="120" height="60" fill="#2a6"/><text x="10" y="38" fill="#fff">medcrawl</text></svg>')


class DemoError(RuntimeError):
    """The demo cannot run here (no sample images, or the crawl failed)."""


@dataclass
class SiteImage:
    """One image placed on the demo site, with the label of the package it came from."""

    file: str           # path relative to the site root
    label: str
    source: str
    sha256: str


@dataclass
class DemoSite:
    """The demo site's files: HTML pages linking each other, images, one PDF, a few bad images."""

    root: Path
    pages: int = 4
    images: list[SiteImage] = field(default_factory=list)
    pdf_images: list[SiteImage] = field(default_factory=list)

    def build(self, log=print) -> "DemoSite":
        """Write the site under ``root`` (replacing what was there)."""
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "img").mkdir(parents=True)
        samples = collect_images(self.root / "img", log)
        self.pdf_images = samples[::5]
        self.images = [s for s in samples if s not in self.pdf_images]
        write_pdf(self.root / "report.pdf", self.root, self.pdf_images)
        self._write_bad_images()
        names = [f"page-{i + 1}.html" for i in range(self.pages)]
        share = -(-len(self.images) // (self.pages + 1))
        chunks = [self.images[i * share:(i + 1) * share] for i in range(self.pages + 1)]
        self._write("index.html", "medcrawl demo", chunks[0],
                    nav=[(n, f"Page {i + 1}") for i, n in enumerate(names)] + [("report.pdf", "PDF report")])
        for i, name in enumerate(names):
            nav = [("./", "Home")] + ([(names[i + 1], "Next page")] if i + 1 < len(names) else [])
            extra = BAD_IMAGES_HTML if i + 1 == len(names) else ""
            self._write(name, f"Page {i + 1}", chunks[i + 1], nav=nav, extra=extra,
                        embed_pdf=i == 0)
        (self.root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
        return self

    def _write(self, name: str, title: str, images: list[SiteImage], nav: list[tuple[str, str]],
               extra: str = "", embed_pdf: bool = False) -> None:
        figures = "\n".join(figure_html(img, STYLES[i % len(STYLES)], self.root)
                            for i, img in enumerate(images))
        links = " | ".join(f'<a href="{href}">{html.escape(text)}</a>' for href, text in nav)
        pdf = '<embed src="report.pdf" type="application/pdf" width="400" height="300">' if embed_pdf else ""
        (self.root / name).write_text(
            f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"</head>\n<body><h1>{html.escape(title)}</h1>\n<nav>{links}</nav>\n"
            f"<main>\n{figures}\n{pdf}\n{extra}</main></body></html>\n", encoding="utf-8")

    def _write_bad_images(self) -> None:
        """Images the crawl must report, not choke on: truncated, tiny, SVG (and a missing one)."""
        donor = next(s for s in self.images if s.file.endswith(".jpg"))
        data = (self.root / donor.file).read_bytes()
        (self.root / "img" / "broken.jpg").write_bytes(data[: len(data) // 2])
        Image.new("RGB", (16, 16), (200, 30, 30)).save(self.root / "img" / "tiny.png")
        (self.root / "img" / "logo.svg").write_text(SVG_LOGO)


BAD_IMAGES_HTML = """<section><h2>Broken and unusual images</h2>
<img src="img/missing.png" alt="does not exist">
<img src="img/broken.jpg" alt="truncated JPEG">
<img src="img/tiny.png" alt="16 px icon">
<img src="img/logo.svg" alt="vector logo">
</section>
"""


def figure_html(img: SiteImage, style: str, root: Path) -> str:
    """One image embedded the way ``style`` says: plain, srcset, lazy, <picture> or CSS background."""
    caption = f"<figcaption>{html.escape(img.source)}</figcaption>"
    if style == "srcset":
        small = make_thumbnail(root / img.file)
        tag = f'<img src="{small}" srcset="{small} 1x, {img.file} 2x" alt="{img.source}">'
    elif style == "lazy":
        tag = f'<img src="{PLACEHOLDER}" data-src="{img.file}" class="lazy" alt="{img.source}">'
    elif style == "picture":
        tag = (f'<picture><source srcset="{img.file}" media="(min-width: 600px)">'
               f'<img src="{make_thumbnail(root / img.file)}" alt="{img.source}"></picture>')
    elif style == "background":
        tag = f'<div style="width:200px;height:150px;background-image:url(\'{img.file}\')"></div>'
    else:
        tag = f'<img src="{img.file}" alt="{img.source}">'
    return f"<figure>{tag}{caption}</figure>"


def make_thumbnail(path: Path) -> str:
    """A half-size copy next to the image (what a srcset's 1x candidate would be); its site path."""
    thumb = path.with_name(f"{path.stem}-small{path.suffix}")
    with Image.open(path) as img:
        img.thumbnail((max(1, img.width // 2), max(1, img.height // 2)))
        img.save(thumb)
    return f"img/{thumb.name}"


def collect_images(folder: Path, log=print) -> list[SiteImage]:
    """A few images of every installed package source, copied into ``folder``."""
    from medcrawl.labels import MEDICAL, NON_MEDICAL
    from medcrawl.samples.build import MAIN_SOURCES, build
    from medcrawl.samples.dicom import PydicomNM
    from medcrawl.samples.documents import Charts, Documents
    from medcrawl.samples.hard import Fundus, Histology
    from medcrawl.samples.packages import INSTALL_SCRIPT, MissingPackageError
    from medcrawl.samples.sources import HARD, MAIN

    wanted = [s for s in MAIN_SOURCES if s is not PydicomNM] + [Histology, Fundus, Charts, Documents]
    ready, missing = [], []
    for cls in wanted:
        try:
            cls().require()
            ready.append(cls)
        except MissingPackageError as exc:
            missing.append(f"{cls.name} ({exc})")
    if missing:
        log("demo: leaving out sources whose packages are missing:\n  " + "\n  ".join(missing))
    if not {c.label for c in ready} >= {MEDICAL, NON_MEDICAL}:
        raise DemoError("the demo needs medical and non-medical sample images: "
                        f"run `bash {INSTALL_SCRIPT}`")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for pool in (MAIN, HARD):
            sources = tuple(c for c in ready if (c.hard_every == 1) == (pool == HARD))
            writer = build(Path(tmp) / pool, sources, pool, IMAGES_PER_SOURCE,
                           max_side=SITE_MAX_SIDE, log=lambda *_: None)
            rows += [(Path(tmp) / pool / r["path"], r) for r in writer.rows]
        images = []
        for i, (path, row) in enumerate(rows):
            name = f"{i + 1:03d}-{row['source']}{path.suffix}"
            shutil.copyfile(path, folder / name)
            images.append(SiteImage(f"img/{name}", row["label"], row["source"], row["sha256"]))
    return images


def write_pdf(path: Path, root: Path, images: list[SiteImage]) -> None:
    """A two-page PDF report with the given images embedded (PyMuPDF)."""
    import pymupdf

    with pymupdf.open() as doc:
        for start in range(0, len(images), 3):
            page = doc.new_page(width=595, height=842)
            page.insert_text((50, 60), f"medcrawl demo report, page {doc.page_count}", fontsize=16)
            for j, img in enumerate(images[start:start + 3]):
                rect = pymupdf.Rect(50, 90 + j * 240, 330, 310 + j * 240)
                page.insert_image(rect, filename=str(root / img.file), keep_proportion=True)
                page.insert_text((345, 200 + j * 240), img.source, fontsize=10)
        doc.save(path)


def crawl_command(url: str, out: Path) -> list[str]:
    """The real crawl, as a user would type it, writing feeds, dataset and image store under out."""
    return [sys.executable, "-m", "scrapy", "crawl", "site", "-a", f"start_urls={url}",
            "-O", str(out / "feed.csv"), "-O", str(out / "feed.jsonl"),
            "-s", f"MEDCRAWL_DATASET_DIR={out / 'dataset'}", "-s", f"IMAGES_STORE={out / 'images'}",
            "-s", f"MEDCRAWL_REPORT={out / 'report.html'}",
            "-s", "AUTOTHROTTLE_ENABLED=False", "-s", f"LOG_FILE={out / 'crawl.log'}"]


def run_crawl(url: str, out: Path, timeout: float = 600) -> None:
    """Run ``scrapy crawl site`` in a child process; raise DemoError with the log's tail on failure."""
    env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "medcrawl.settings"}
    proc = subprocess.run(crawl_command(url, out), cwd=REPO_ROOT, env=env, timeout=timeout,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        log_path = out / "crawl.log"
        tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
        raise DemoError(f"the crawl exited with {proc.returncode}:\n{proc.stderr[-2000:]}{tail}")


@dataclass(frozen=True)
class Disagreement:
    """An image the model labelled otherwise than the package it came from."""

    image: str          # the image's file name, or ``report.pdf p.N`` for a PDF image
    expected: str       # the package's label
    label: str          # the model's
    confidence: float

    def line(self) -> str:
        return f"  {self.image}: package {self.expected}, model {self.label} ({self.confidence:.2f})"


@dataclass
class Summary:
    """What the crawl produced: row counts, labels, reasons, agreement with the package labels."""

    rows: int
    status: Counter
    labels: Counter
    reasons: Counter
    by_type: Counter
    agreed: int
    compared: int
    dataset_files: int
    disagreements: list[Disagreement] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"rows: {self.rows} ({', '.join(f'{k} {v}' for k, v in sorted(self.status.items()))})",
               f"labels: {self.labels.get('medical', 0)} medical, "
               f"{self.labels.get('non-medical', 0)} non-medical",
               f"sources: {', '.join(f'{k} {v}' for k, v in sorted(self.by_type.items()))}"]
        if self.reasons:
            out.append("errors/skips: " + ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items())))
        if self.compared:
            out.append(f"agreement with the package labels: {self.agreed}/{self.compared} images"
                       + (", except:" if self.disagreements else ""))
            out += [d.line() for d in self.disagreements]
        out.append(f"dataset files: {self.dataset_files}")
        return out


def summarise(out: Path, site: DemoSite) -> Summary:
    """Read feed.csv and the dataset folder into a Summary."""
    with open(out / "feed.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    truth = {img.sha256: img.label for img in site.images + site.pdf_images}
    labelled = [r for r in rows if r["status"] == "ok"]
    compared = [r for r in labelled if r["sha256"] in truth]
    dataset = out / "dataset"
    return Summary(
        rows=len(rows), status=Counter(r["status"] for r in rows),
        labels=Counter(r["label"] for r in labelled),
        reasons=Counter(r["error"] for r in rows if r["status"] != "ok"),
        by_type=Counter(r["source_type"] for r in rows),
        agreed=sum(truth[r["sha256"]] == r["label"] for r in compared), compared=len(compared),
        dataset_files=sum(1 for p in dataset.rglob("*") if p.is_file() and p.name != "manifest.csv")
        if dataset.is_dir() else 0,
        disagreements=sorted({Disagreement(image_name(r), truth[r["sha256"]], r["label"], float(r["confidence"]))
                              for r in compared if truth[r["sha256"]] != r["label"]}, key=lambda d: d.image))


def image_name(row: dict) -> str:
    """How the summary names a row's image: its file name, or the PDF and page it is on."""
    if row["source_type"] == "pdf":
        return f"{row['source_url'].rsplit('/', 1)[-1]} p.{row['pdf_page']}"
    return row["image_url"].rsplit("/", 1)[-1]


def run_demo(out: Path = DEFAULT_OUT, pages: int = 4, log=print) -> Summary:
    """Build, serve and crawl the demo site; return the summary (also printed through ``log``)."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("feed.csv", "feed.jsonl", "crawl.log", "report.html"):
        (out / stale).unlink(missing_ok=True)
    for stale in ("dataset", "images", "report_files"):
        shutil.rmtree(out / stale, ignore_errors=True)
    started = time.monotonic()
    site = DemoSite(out / "site", pages).build(log)
    log(f"demo site: {len(site.images)} images on {pages + 1} pages, {len(site.pdf_images)} in "
        f"report.pdf, 4 broken ones ({out / 'site'})")
    with serving(folder_handler(out / "site")) as base:
        log(f"serving on {base}/; crawling (log: {out / 'crawl.log'}) ...")
        run_crawl(f"{base}/", out)
    summary = summarise(out, site)
    log(f"done in {time.monotonic() - started:.0f}s")
    log(f"feeds:   {out / 'feed.csv'}\n         {out / 'feed.jsonl'}")
    log(f"dataset: {out / 'dataset'}  images: {out / 'images'}")
    report = out / "report.html"
    log(f"report:  {report} (open it in a browser)" if report.is_file()
        else f"report:  not written (see {out / 'crawl.log'})")
    for line in summary.lines():
        log(line)
    return summary


def main(argv: list[str] | None = None, prog: str = "python -m medcrawl.oneoff.demo") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default ./{DEFAULT_OUT})")
    parser.add_argument("--pages", type=int, default=4, help="content pages besides the home page")
    args = parser.parse_args(argv)
    if args.pages < 1:
        parser.error("--pages must be at least 1")
    try:
        run_demo(args.out, args.pages)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
