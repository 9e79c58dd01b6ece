"""What a sample source is: origin keys that load into Samples, split into the main and hard pools."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from medcrawl.model.images import open_image
from medcrawl.samples.packages import Package

MAIN, HARD = "main", "hard"
MIN_SIDE = 32


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
