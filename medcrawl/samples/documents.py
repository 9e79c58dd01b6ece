"""Hard-set documents and charts: package texts rendered as (scanned) pages, seeded random charts, real scans."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageFilter

from medcrawl.labels import NON_MEDICAL
from medcrawl.samples.packages import Package, deb_files
from medcrawl.samples.sources import MATPLOTLIB, SKIMAGE, Derived, HardSource, Sample, SampleFiles


BASE_FILES = Package("deb", "base-files")
TEXT_GLOBS = ("/usr/share/common-licenses/*",)
TEXT_PACKAGES = ("mricron-data", "openclipart-png", "oxygen-icon-theme", "tuxpaint-stamps-default",
                 "mate-backgrounds", "ukui-wallpapers", "lomiri-wallpapers-20.04")
PAGE_CHARS = 3000
FONTS = ("helv", "tiro", "cour")


class Documents(HardSource):
    """Licence and copyright texts set on A4 pages with PyMuPDF, rendered like grey scans."""

    name, label, modality = "hard-documents", NON_MEDICAL, "document"
    packages = (BASE_FILES,)
    near_duplicates = False         # every page of small text looks alike at 16x16

    def texts(self) -> list[Path]:
        paths = [p for g in TEXT_GLOBS for p in Path("/").glob(g.lstrip("/")) if p.is_file()]
        paths += [Path(f"/usr/share/doc/{name}/copyright") for name in TEXT_PACKAGES]
        return sorted(p for p in paths if p.is_file() and not p.is_symlink())

    def all_keys(self) -> list[str]:
        keys = []
        for path in self.texts():
            size = len(path.read_text(errors="replace"))
            keys += [f"{path}#page{i + 1}" for i in range(max(1, size // PAGE_CHARS))]
        return keys

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        path, _, page = key.partition("#page")
        start = (int(page) - 1) * PAGE_CHARS
        text = Path(path).read_text(errors="replace")[start:start + PAGE_CHARS]
        package = self.package_of(Path(path))
        scan = scan_effect(render_text_page(text, f"{Path(path).name} ({page})", rng), rng)
        yield Sample(scan, key, self.modality, package)
        w, h = scan.size
        top = rng.randrange(0, h // 2)
        yield Sample(scan.crop((0, top, w, top + int(w * 0.6))), f"{key}#crop", self.modality, package)

    def package_of(self, path: Path) -> Package:
        parts = path.parts
        if parts[:4] == ("/", "usr", "share", "doc") and deb_files(parts[4]):
            return Package("deb", parts[4])
        return BASE_FILES


def render_text_page(text: str, title: str, rng: random.Random) -> Image.Image:
    """One A4 page holding ``text`` under a bold title, rendered grey at about 100 dpi."""
    import pymupdf

    margin, title_size = rng.uniform(40, 80), rng.uniform(13, 18)
    style = dict(fontsize=rng.uniform(8, 11.5), fontname=rng.choice(FONTS),
                 lineheight=rng.uniform(1.1, 1.5))
    text = re.sub(r"[ \t]+", " ", text)
    with pymupdf.open() as doc:
        while True:     # insert_textbox writes nothing when the text overflows: shorten it
            page = doc.new_page(width=595, height=842)
            page.insert_text((margin, margin + 10), title, fontsize=title_size, fontname="hebo")
            body = pymupdf.Rect(margin, margin + 28, 595 - margin, 842 - margin)
            if page.insert_textbox(body, text, **style) >= 0 or len(text) < 200:
                break
            text = text[:int(len(text) * 0.8)]
        pix = page.get_pixmap(dpi=rng.randint(85, 110), colorspace=pymupdf.csGRAY)
    return Image.frombytes("L", (pix.width, pix.height), pix.samples)


def scan_effect(img: Image.Image, rng: random.Random) -> Image.Image:
    """Make a clean render look scanned: paper tone, small skew, blur and sensor noise."""
    paper = rng.randint(225, 252)
    arr = np.asarray(img, np.float32) * (paper / 255.0)
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8), "L")
    img = img.rotate(rng.uniform(-2.0, 2.0), resample=Image.Resampling.BICUBIC, expand=False, fillcolor=paper)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.8)))
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(2, 8), img.size[::-1])
    return Image.fromarray((np.asarray(img, np.float32) + noise).clip(0, 255).astype(np.uint8), "L")


class ScannedPages(SampleFiles):
    """Real scanned text shipped with scikit-image (page.png, text.png)."""

    name, label, modality = "skimage-pages", NON_MEDICAL, "document"
    hard_every = 1
    files = ((SKIMAGE, "page.png"), (SKIMAGE, "text.png"))


class RealDocuments(Derived):
    name, label, modality = "hard-documents-scanned", NON_MEDICAL, "document"
    bases = (ScannedPages,)


CHART_KINDS = ("line", "bar", "barh", "scatter", "pie", "hist", "area", "box")
CHARTS_PER_KIND = 40


class Charts(HardSource):
    """Line, bar, scatter, pie, histogram, area and box charts of seeded random data."""

    name, label, modality = "hard-charts", NON_MEDICAL, "chart"
    packages = (MATPLOTLIB,)

    def all_keys(self) -> list[str]:
        return [f"{kind}-{i:03d}" for kind in CHART_KINDS for i in range(CHARTS_PER_KIND)]

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        grey = rng.random() < 0.5
        img = draw_chart(key.rsplit("-", 1)[0], rng, grey)
        yield Sample(img.convert("L") if grey else img, f"matplotlib:{key}", self.modality,
                     MATPLOTLIB, lossless=True, licence="generated (seeded random data)")


def draw_chart(kind: str, rng: random.Random, grey: bool) -> Image.Image:
    """Render one chart of ``kind`` with matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    nrng = np.random.default_rng(rng.randrange(1 << 30))
    fig = Figure(figsize=(rng.uniform(3.2, 5.0), rng.uniform(2.4, 3.8)), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours: Any = [str(g) for g in np.linspace(0.1, 0.7, 6)] if grey else None
    n = rng.randint(4, 9)
    labels = [rng.choice(("Q", "W", "G", "T", "S")) + str(i + 1) for i in range(n)]
    if kind == "line":
        for j in range(rng.randint(1, 4)):
            ax.plot(np.cumsum(nrng.normal(0, 1, 50)), color=colours[j] if grey else None,
                    marker=rng.choice(("", "o", "s")), markersize=3)
    elif kind in ("bar", "barh"):
        bars = ax.bar if kind == "bar" else ax.barh
        bars(labels, nrng.uniform(1, 10, n), color=colours[2] if grey else f"C{rng.randint(0, 9)}")
    elif kind == "scatter":
        x = nrng.normal(0, 1, 120)
        ax.scatter(x, x * rng.uniform(-1, 1) + nrng.normal(0, 0.5, 120), s=8,
                   c=colours[1] if grey else nrng.uniform(0, 1, 120), cmap=None if grey else "viridis")
    elif kind == "pie":
        ax.pie(nrng.uniform(1, 5, n), labels=labels, colors=list(np.linspace(0.2, 0.9, n).astype(str))
               if grey else None, autopct="%1.0f%%" if rng.random() < 0.5 else None)
    elif kind == "hist":
        ax.hist(nrng.normal(0, 1, 400), bins=rng.randint(10, 30), color=colours[3] if grey else None)
    elif kind == "area":
        ax.stackplot(np.arange(30), nrng.uniform(0, 3, (3, 30)).cumsum(axis=1),
                     colors=colours[:3] if grey else None)
    else:
        ax.boxplot([nrng.normal(m, 1, 40) for m in nrng.uniform(0, 4, n)])
    ax.set_title(f"{rng.choice(('Sales', 'Growth', 'Results', 'Survey', 'Usage'))} {rng.randint(2001, 2024)}",
                 fontsize=9)
    if kind != "pie" and rng.random() < 0.6:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy(), "RGB")
