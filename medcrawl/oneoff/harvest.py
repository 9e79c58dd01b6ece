"""Open a finished harvest for the report and the Review tab: a dataset folder, or a feed plus its store."""

from __future__ import annotations

import csv
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from medcrawl.corrections import UNCERTAIN, Correction, DatasetDir
from medcrawl.files import write_once
from medcrawl.model.images import ImageError, open_image, to_rgb

THUMB_SIDE = 200
FLOATS = ("medical_probability", "confidence", "modality_confidence")


class HarvestError(ValueError):
    """The path is not a harvest this tool can read; the message says what is expected."""


@dataclass
class Image:
    """One distinct image (by sha256) of a harvest, with its first row and its current verdict."""

    row: dict
    file: Path | None                 # the image on disk, None when not available
    occurrences: int = 1
    correction: Correction | None = None
    caption: str = ""                 # the first caption among its rows, else the first alt text
    _has_caption: bool = field(default=False, repr=False)

    def take_caption(self, row: dict) -> None:
        """Keep a row's caption (or its alt text while no row had a caption) as the image's."""
        caption, alt = (" ".join((row.get(name) or "").split()) for name in ("caption", "alt"))
        if caption and not self._has_caption:
            self.caption, self._has_caption = caption, True
        elif alt and not self.caption:
            self.caption = alt

    @property
    def sha256(self) -> str:
        return self.row["sha256"]

    @property
    def label(self) -> str:
        return self.correction.new_label if self.correction else self.row["label"]

    @property
    def modality(self) -> str:
        return self.correction.new_modality if self.correction else (self.row.get("modality") or "")

    @property
    def confidence(self) -> float:
        return self.row["confidence"] or 0.0

    @property
    def folder(self) -> str:
        """Top folder in a dataset (``uncertain`` for images not confident enough), else empty."""
        name = self.row.get("file") or ""
        return name.split("/", 1)[0] if "/" in name else ""

    @property
    def uncertain(self) -> bool:
        return self.folder == UNCERTAIN and self.correction is None


@dataclass
class Harvest:
    """Rows of a harvest, its distinct images, and the folder whose corrections.csv applies to it."""

    name: str
    rows: list[dict]
    images_root: Path | None          # ``path``/``file`` columns are relative to it
    dataset: DatasetDir | None        # where corrections are kept (and applied, for a dataset)
    is_dataset: bool = False
    images: dict[str, Image] = field(default_factory=dict)
    _manifest_key: tuple[int, int] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike, store: str | os.PathLike | None = None) -> Harvest:
        """A dataset folder (with manifest.csv) or a CSV/JSONL feed; ``store`` holds the feed's files."""
        path = Path(path)
        if path.is_dir():
            if not (path / "manifest.csv").is_file():
                raise HarvestError(f"{path} has no manifest.csv: give a dataset folder or a feed file")
            rows = read_rows(path / "manifest.csv")
            harvest = cls(path.name, rows, path, DatasetDir(path), is_dataset=True)
        elif path.is_file():
            root = Path(store) if store else None
            if root is not None and not root.is_dir():
                raise HarvestError(f"store {root} is not a folder")
            harvest = cls(path.name, read_rows(path), root, DatasetDir(root) if root else None)
        else:
            raise HarvestError(f"{path} does not exist")
        harvest.index()
        return harvest

    def index(self) -> None:
        """Group ok rows by content and attach the latest corrections."""
        self.images = {}
        key = "file" if self.is_dataset else "path"
        for row in self.rows:
            row["site"] = site_of(row)
            sha = row.get("sha256")
            if row.get("status") != "ok" or not sha:
                continue
            if sha in self.images:
                self.images[sha].occurrences += 1
                self.images[sha].take_caption(row)
                continue
            file = self.images_root / row[key] if self.images_root and row.get(key) else None
            self.images[sha] = Image(row, file)
            self.images[sha].take_caption(row)
        self.refresh()

    def refresh(self) -> None:
        """Re-read corrections.csv (another reviewer may have added some) and follow moved files."""
        if self.dataset is None:
            return
        corrections = self.dataset.corrections()
        files = self._moved_files() if self.is_dataset else {}
        for sha, image in self.images.items():
            image.correction = corrections.get(sha)
            if files.get(sha) and self.images_root:
                image.row["file"], image.file = files[sha], self.images_root / files[sha]

    def _moved_files(self) -> dict[str, str]:
        """sha256 -> file from the manifest when it changed since last read (corrections rewrite it)."""
        assert self.dataset is not None
        st = self.dataset.manifest.stat()
        if self._manifest_key == (st.st_mtime_ns, st.st_size):
            return {}
        self._manifest_key = (st.st_mtime_ns, st.st_size)
        return {r["sha256"]: r["file"] for r in read_rows(self.dataset.manifest)}

    def reviewed(self) -> int:
        return sum(1 for i in self.images.values() if i.correction is not None)


def read_rows(path: Path) -> list[dict]:
    """Rows of a CSV or JSON-lines file with the float columns as floats (or None)."""
    with open(path, newline="", encoding="utf-8") as fh:
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(fh))
        elif path.suffix.lower() in (".jsonl", ".jl", ".ndjson", ".jsonlines"):
            rows = [json.loads(line) for line in fh if line.strip()]
        else:
            raise HarvestError(f"{path}: not a .csv or .jsonl feed")
    for row in rows:
        for name in FLOATS:
            value = row.get(name)
            row[name] = float(value) if value not in (None, "") else None
        for name, value in row.items():
            row[name] = "" if value is None and name not in FLOATS else value
    return rows


def source_link(row: dict) -> tuple[str, str]:
    """(href, text) of the page or PDF (at its page) a row came from."""
    url = row.get("source_url") or ""
    if row.get("source_type") == "pdf" or url.lower().split("?")[0].endswith(".pdf"):
        page = row.get("pdf_page")
        return (f"{url}#page={page}" if page else url), (f"PDF p.{page}" if page else "PDF")
    return url, "page"


def site_of(row: dict) -> str:
    """The host a row's page or PDF came from (``local`` for files)."""
    return urlsplit(row.get("source_url") or "").netloc or "local"


def thumbnails(images: list[Image], folder: Path, side: int = THUMB_SIDE, workers: int | None = None,
               progress: bool = False) -> dict[str, Path]:
    """JPEG thumbnails ``folder/<sha256>.jpg``, made once each, in parallel; sha256 -> file."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = {i.sha256: i.file for i in images if i.file is not None}
    done: dict[str, Path] = {}
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool, \
            tqdm(total=len(jobs), unit="img", desc="thumbnails", disable=not progress, leave=False) as bar:
        futures = {pool.submit(make_thumbnail, src, folder / f"{sha}.jpg", side): sha
                   for sha, src in jobs.items()}
        for future in as_completed(futures):
            if future.result():
                done[futures[future]] = folder / f"{futures[future]}.jpg"
            bar.update()
    return done


def make_thumbnail(source: Path, target: Path, side: int) -> bool:
    """Write a thumbnail of an image file unless it exists; False when the image cannot be read."""
    if target.exists():
        return True
    try:
        img, _ = open_image(source.read_bytes(), draft_size=side)
    except (OSError, ImageError):
        return False
    img = to_rgb(img)
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    write_once(target, buf.getvalue())
    return True
