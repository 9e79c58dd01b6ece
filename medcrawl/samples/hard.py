"""The hard set: package images the training pack lacks (grey photos, documents, charts, colour scans).

Built with ``python -m training.package_data --hard --out DIR`` (``medcrawl.samples.build``). Photos, icons, MRI slices and
ultrasound come from the ``hard`` pool of the main sources, so they never share an origin file
with the main set; documents and charts are drawn here from package texts and seeded random data.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from medcrawl.model.classifier import MEDICAL, NON_MEDICAL
from medcrawl.samples.build import flatten
from medcrawl.samples.dicom import PydicomUS
from medcrawl.samples.everyday import Emoji, OpenClipart, OxygenIcons, TuxpaintStamps, Wallpapers
from medcrawl.samples.packages import Package, deb_files
from medcrawl.samples.sources import HARD, MATPLOTLIB, SKIMAGE, Sample, SampleFiles, Source, crops, to_uint8
from medcrawl.samples.volumes import MNI152, MRICRON, MRIcron, load_volume, volume_slice


class HardSource(Source):
    """A source that exists only in the hard set."""

    hard_every = 1


class Derived(HardSource):
    """Samples of other sources' hard pools, changed by ``transform``."""

    bases: tuple[type[Source], ...] = ()

    def __init__(self):
        self._bases = {cls.name: cls() for cls in self.bases}

    @property
    def packages(self):
        return tuple(dict.fromkeys(p for b in self._bases.values() for p in b.packages))

    def all_keys(self) -> list[str]:
        return [f"{name}|{key}" for name, base in self._bases.items() for key in base.keys(HARD)]

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        name, _, inner = key.partition("|")
        for sample in self._bases[name].load(inner, rng):
            yield from self.transform(sample, rng)

    def transform(self, sample: Sample, rng: random.Random) -> Iterator[Sample]:
        yield sample


def restyle(sample: Sample, image: Image.Image, modality: str = "", suffix: str = "",
            lossless: bool | None = None) -> Sample:
    """A copy of ``sample`` holding a new image (origin bytes dropped)."""
    return Sample(image, sample.origin_path + suffix, modality or sample.modality, sample.package,
                  None, sample.lossless if lossless is None else lossless, sample.licence)


# ---------------------------------------------------------------------------------------------
# Non-medical


class GreyPhotoFiles(SampleFiles):
    """Black-and-white photos and textures shipped with scikit-image."""

    name, label, modality = "skimage-grey-photos", NON_MEDICAL, "photo"
    hard_every = 1
    files = tuple((SKIMAGE, n) for n in ("camera.png", "moon.png", "coins.png", "clock_motion.png",
                                         "brick.png", "grass.png", "gravel.png"))

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        for sample in super().load(key, rng):
            yield sample
            for i, crop in enumerate(crops(sample.image, rng, 2, 0.4, 0.8)):
                yield restyle(sample, crop, suffix=f"#crop{i + 1}")


class GreyscalePhotos(Derived):
    """Wallpaper and Tux Paint photos turned grey, with a little contrast or sepia-free toning."""

    name, label, modality = "hard-greyscale-photos", NON_MEDICAL, "photo"
    bases = (Wallpapers, TuxpaintStamps, GreyPhotoFiles)

    def all_keys(self) -> list[str]:
        return [k for k in super().all_keys() if "/stamps/symbols/" not in k]   # letters, signs

    def transform(self, sample: Sample, rng: random.Random) -> Iterator[Sample]:
        grey = flatten(sample.image).convert("L")
        if rng.random() < 0.5:
            grey = ImageOps.autocontrast(grey, cutoff=rng.uniform(0, 2))
        yield restyle(sample, grey, suffix="#grey")


class LogosIcons(Derived):
    """Logos and symbols from Openclipart, Oxygen icons and emoji; some turned grey."""

    name, label, modality = "hard-logos-icons", NON_MEDICAL, "logo"
    bases = (OpenClipart, OxygenIcons, Emoji)
    folders = ("/logos/", "/signs_and_symbols/", "/buttons/", "/flags/", "/geography/")

    def all_keys(self) -> list[str]:
        keys = super().all_keys()
        return [k for k in keys if not k.startswith(OpenClipart.name) or
                any(f in k for f in self.folders)]

    def transform(self, sample: Sample, rng: random.Random) -> Iterator[Sample]:
        if rng.random() < 0.3:
            yield restyle(sample, flatten(sample.image).convert("L"), suffix="#grey")
        else:
            yield sample


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
    img = img.rotate(rng.uniform(-2.0, 2.0), resample=Image.BICUBIC, expand=False, fillcolor=paper)
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
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = [str(g) for g in np.linspace(0.1, 0.7, 6)] if grey else None
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
        ax.pie(nrng.uniform(1, 5, n), labels=labels, colors=np.linspace(0.2, 0.9, n).astype(str)
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
    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy(), "RGB")


# ---------------------------------------------------------------------------------------------
# Medical


class ColourSampleFiles(SampleFiles):
    """Colour medical images shipped with scikit-image, only in the hard set."""

    label = MEDICAL
    hard_every = 1


class IHCFiles(ColourSampleFiles):
    name, modality, files = "skimage-ihc", "histology", ((SKIMAGE, "ihc.png"),)


class FundusFiles(ColourSampleFiles):
    name, modality, files = "skimage-fundus", "fundus", ((SKIMAGE, "retina.jpg"),
                                                         (SKIMAGE, "microaneurysms.png"))


class CellFiles(ColourSampleFiles):
    name, modality, files = "skimage-cell", "microscopy", ((SKIMAGE, "cell.png"),)


MIN_CROP_STD = 12.0


class Cropped(Derived):
    """The whole image plus ``count`` random crops at several scales, some flipped or rotated."""

    count = 24
    scales = (0.25, 0.85)

    def transform(self, sample: Sample, rng: random.Random) -> Iterator[Sample]:
        yield sample
        if min(sample.image.size) < 128:
            return
        for i, crop in enumerate(crops(sample.image, rng, self.count, *self.scales)):
            if np.asarray(crop.convert("L"), np.float32).std() < MIN_CROP_STD:
                continue    # a crop of empty background shows nothing of the scan
            crop = crop.transpose(rng.choice((Image.FLIP_LEFT_RIGHT, Image.ROTATE_90,
                                              Image.ROTATE_180, Image.FLIP_TOP_BOTTOM)))
            yield restyle(sample, crop, suffix=f"#crop{i + 1}")


class Histology(Cropped):
    name, label, modality, bases = "hard-histology", MEDICAL, "histology", (IHCFiles,)
    count = 40


class Fundus(Cropped):
    name, label, modality, bases = "hard-fundus", MEDICAL, "fundus", (FundusFiles,)
    count = 30


class Microscopy(Cropped):
    name, label, modality, bases = "hard-microscopy", MEDICAL, "microscopy", (CellFiles,)
    count, scales = 12, (0.5, 0.9)


class ColourUltrasound(Cropped):
    """Colour (RGB and palette) ultrasound frames of pydicom's hard pool, whole and cropped."""

    name, label, modality, bases = "hard-colour-ultrasound", MEDICAL, "ultrasound", (PydicomUS,)
    count = 3


LUT_NAMES = ("1hot", "HOTIRON", "NIH", "NIH_fire", "GE_color", "x_hot", "spectrum", "cardiac",
             "Rainramp", "blackbdy", "actc", "gold", "5redyell", "x_rain")


def colour_lut(name: str) -> np.ndarray:
    """A 256x3 uint8 colour table from MRIcron's .lut files (256 reds, greens, blues)."""
    raw = np.frombuffer(Path(f"/usr/share/mricron/lut/{name}.lut").read_bytes(), np.uint8)
    lut = raw.reshape(3, 256).T.copy()
    lut[0] = 0      # background outside the head stays black, as viewers show it
    return lut


class ColourMRI(Derived):
    """MRI slices of the hard pool in MRIcron colour tables, some blurred like PET / SPECT."""

    name, label, modality, bases = "hard-colour-mri", MEDICAL, "mri", (MNI152, MRIcron)

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        name, _, inner = key.partition("|")
        path, _, where = inner.partition("#")
        base = self._bases[name]
        axis = ("sagittal", "coronal", "axial").index(where[:-2])
        grey = to_uint8(volume_slice(load_volume(path), axis, int(where[-2:]), base.per_axis))
        lut_name = rng.choice(LUT_NAMES)
        pet = rng.random() < 0.5
        if pet:
            grey = np.asarray(Image.fromarray(grey).filter(ImageFilter.GaussianBlur(rng.uniform(2, 4))))
        image = Image.fromarray(colour_lut(lut_name)[grey], "RGB")
        yield Sample(image, f"{inner}#{lut_name}{'-blur' if pet else ''}",
                     self.modality, base.packages[0], lossless=True)

    @property
    def packages(self):
        return super().packages + (MRICRON,)


HARD_SOURCES: tuple[type[Source], ...] = (
    ColourMRI, ColourUltrasound, Histology, Fundus, Microscopy,
    GreyscalePhotos, Documents, RealDocuments, Charts, LogosIcons,
)
