"""Labelled image folders built from the sample sources: encode, drop duplicates, write MANIFEST.csv.

Every origin file belongs to one pool, ``main`` or ``hard``, so the two sets never share an origin.
``python -m training.package_data`` is the command line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from medcrawl.labels import MEDICAL, NON_MEDICAL
from medcrawl.model.images import ImageError, on_white
from medcrawl.samples.dicom import PydicomCT, PydicomMR, PydicomNM, PydicomUS, PydicomXray
from medcrawl.samples.everyday import Emoji, OpenClipart, OxygenIcons, SamplePhotos, TuxpaintStamps, Wallpapers
from medcrawl.samples.packages import MissingPackageError
from medcrawl.samples.sources import MAIN, MIN_SIDE, Sample, Source, to_uint8
from medcrawl.samples.volumes import MNI152, MRIcron

MANIFEST_FIELDS = ("path", "label", "source", "modality", "width", "height", "sha256",
                   "origin_package", "origin_path", "licence")
MAX_SIDE = 256
JPEG_QUALITY = 90
DEFAULT_SEED = 1234
NEAR_DUPLICATE = 1.5        # mean absolute difference of 16x16 grey thumbnails, out of 255

MAIN_SOURCES: tuple[type[Source], ...] = (
    PydicomCT, PydicomMR, PydicomXray, PydicomUS, PydicomNM, MNI152, MRIcron,
    OpenClipart, OxygenIcons, TuxpaintStamps, Wallpapers, Emoji, SamplePhotos,
)


def encode(sample: Sample, max_side: int) -> tuple[bytes, str, Image.Image]:
    """Stored bytes, extension and stored image: the origin bytes when usable, else re-encoded."""
    img = sample.image
    fmt = (img.format or "").upper()
    usable = sample.data is not None and fmt in ("JPEG", "PNG") and max(img.size) <= max_side \
        and img.mode in ("L", "RGB")
    if usable and sample.data is not None:
        return sample.data, "jpg" if fmt == "JPEG" else "png", img
    img = flatten(img)
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
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
        pixels = np.asarray(img)
        return Image.fromarray(to_uint8(pixels, float(pixels.min()), float(pixels.max())))
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
        sig = np.asarray(flatten(img).convert("L").resize((16, 16), Image.Resampling.BILINEAR), np.float32)
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
