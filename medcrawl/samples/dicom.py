"""Medical samples: the DICOM test files of pydicom and pydicom-data, rendered as the product does."""

from __future__ import annotations

import functools
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from medcrawl.extract.dicom import render_frame
from medcrawl.labels import MEDICAL
from medcrawl.samples.packages import Package
from medcrawl.samples.sources import MIN_SIDE, Sample, Source

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
    """One frame (0-based) of a DICOM dataset as the product renders it (``medcrawl.extract.dicom``)."""
    pixels = render_frame(ds, frame)
    return Image.fromarray(pixels, "RGB" if pixels.ndim == 3 else "L")


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
