"""The hard set: package images the training pack lacks (grey photos, documents, charts, colour scans).

Built with ``python -m training.package_data --hard --out DIR`` (``medcrawl.samples.build``).
Photos, icons, MRI slices and ultrasound come from the ``hard`` pool of the main sources, so they
never share an origin file with the main set; documents and charts (``documents.py``) are drawn
from package texts and seeded random data.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from medcrawl.labels import MEDICAL, NON_MEDICAL
from medcrawl.samples.build import flatten
from medcrawl.samples.dicom import PydicomUS
from medcrawl.samples.documents import Charts, Documents, RealDocuments
from medcrawl.samples.everyday import Emoji, OpenClipart, OxygenIcons, TuxpaintStamps, Wallpapers
from medcrawl.samples.sources import (SKIMAGE, Derived, Sample, SampleFiles, Source, crops, restyle,
                                      to_uint8)
from medcrawl.samples.volumes import MNI152, MRICRON, MRIcron, load_volume, volume_slice


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
            crop = crop.transpose(rng.choice((Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_90,
                                              Image.Transpose.ROTATE_180, Image.Transpose.FLIP_TOP_BOTTOM)))
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
