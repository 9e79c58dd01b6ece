"""A dataset folder's corrections: DIR/corrections.csv, applied to its files and manifest at once.

Shared by the dataset pipeline (a re-crawl never puts a corrected image back), the Review tab and
training. A correction also rewrites the imagefolder metadata (medcrawl/publish.py). Every
change to ``corrections.csv`` or ``manifest.csv`` is made holding an exclusive
``flock`` on the folder itself, so two reviewers, and a crawl appending to the manifest meanwhile,
lose nothing.
"""

from __future__ import annotations

import csv
import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

from medcrawl.files import TMP_PREFIX, repair_partial_line
from medcrawl.items import ROW_FIELDS
from medcrawl.labels import MEDICAL, NON_MEDICAL, OTHER_MODALITY
from medcrawl.publish import in_split, write_metadata

UNUSABLE, UNCERTAIN = "unusable", "uncertain"
LABELS = (MEDICAL, NON_MEDICAL, UNUSABLE)        # what a reviewer may decide
MANIFEST_FIELDS = ("file", "split", *ROW_FIELDS)


@dataclass(frozen=True)
class Correction:
    """One reviewer's decision about one image (by content); old == new confirms the model."""

    sha256: str
    old_label: str
    new_label: str
    old_modality: str = ""
    new_modality: str = ""
    when: str = ""


CORRECTION_FIELDS = tuple(f.name for f in fields(Correction))


def folder_for(label: str, modality: str = "", by_modality: bool = False, split: str = "") -> str:
    """The dataset folder of a label: ``medical``, ``non-medical``, ``unusable`` or ``uncertain``;
    ``medical/<modality>`` in a dataset sorted by modality; ``<split>/`` first for the two labels
    a split holds (uncertain and unusable images are in no split)."""
    folder = f"{label}/{modality or OTHER_MODALITY}" if by_modality and label == MEDICAL else label
    return f"{split}/{folder}" if split and label in (MEDICAL, NON_MEDICAL) else folder


def sorted_by_modality(rows: list[dict]) -> bool:
    """Whether a manifest's files lie in ``medical/<modality>/`` folders."""
    return any(in_split(r).startswith(f"{MEDICAL}/") and in_split(r).count("/") == 2 for r in rows)


class DatasetDir:
    """A dataset folder: its manifest, its corrections, and the lock that orders changes to them."""

    def __init__(self, root: str | os.PathLike, by_modality: bool | None = None):
        self.root, self.by_modality = Path(root), by_modality    # None: as the manifest's files lie
        self.manifest = self.root / "manifest.csv"
        self.corrections_file = self.root / "corrections.csv"
        self._cache: tuple[tuple[int, int], dict[str, Correction]] | None = None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's exclusive lock (other processes and threads wait)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)                 # closing the descriptor releases the lock

    # ---- corrections ----------------------------------------------------------------------

    def history(self) -> list[Correction]:
        """Every correction in the order made (a torn last line is ignored)."""
        if not self.corrections_file.exists():
            return []
        with open(self.corrections_file, newline="", encoding="utf-8") as fh:
            return [Correction(**{k: r[k] or "" for k in CORRECTION_FIELDS})
                    for r in csv.DictReader(fh)
                    if all(r.get(k) is not None for k in CORRECTION_FIELDS) and r["new_label"] in LABELS]

    def corrections(self) -> dict[str, Correction]:
        """The latest correction per sha256 (re-read only when the file changed)."""
        try:
            st = self.corrections_file.stat()
        except FileNotFoundError:
            return {}
        key = (st.st_mtime_ns, st.st_size)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, {c.sha256: c for c in self.history()})
        return self._cache[1]

    def correct(self, sha256: str, new_label: str, new_modality: str = "", *,
                old_label: str = "", old_modality: str = "") -> Correction:
        """Record a decision and apply it: the file moves, the manifest follows."""
        if new_label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}, not {new_label!r}")
        new_modality = new_modality if new_label == MEDICAL else ""
        with self.locked():
            rows = self._read_manifest()
            files = {r["file"] for r in rows if sha256 in (r["sha256"], r.get("duplicate_of"))}
            mine = [r for r in rows if r["file"] in files]
            if mine:
                old_label, old_modality = mine[0]["label"], mine[0]["modality"]
            when = datetime.now(timezone.utc).isoformat(timespec="seconds")
            correction = Correction(sha256, old_label, new_label, old_modality, new_modality, when)
            self._append(self.corrections_file, CORRECTION_FIELDS, [astuple(correction)])
            if mine:
                self._apply(correction, rows, mine)
        return correction

    def _apply(self, correction: Correction, rows: list[dict], mine: list[dict]) -> None:
        """Move the image (each copy: one per split with dedupe off) to its new folder and point
        its manifest rows (and its near-duplicates' rows) there."""
        by_modality = sorted_by_modality(rows) if self.by_modality is None else self.by_modality
        moved: dict[str, str] = {}
        for row in mine:
            if row["file"] not in moved:
                folder = folder_for(correction.new_label, correction.new_modality, by_modality,
                                    row.get("split", ""))
                moved[row["file"]] = f"{folder}/{Path(row['file']).name}"
                self._move(self.root / row["file"], self.root / moved[row["file"]])
            row.update(file=moved[row["file"]], label=correction.new_label, modality=correction.new_modality)
        self._rewrite_manifest(rows)
        write_metadata(self.root, rows)          # imagefolder's labels and paths follow

    @staticmethod
    def _move(source: Path, target: Path) -> None:
        if source != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.exists():
                os.replace(source, target)

    def repoint(self, old_file: str, new_file: str, kept_sha256: str) -> None:
        """A larger near-duplicate replaced ``old_file``: its rows now name ``new_file`` and the
        kept content (``duplicate_of`` empty on the kept content's own rows)."""
        with self.locked():
            rows = self._read_manifest()
            for row in rows:
                if row["file"] == old_file:
                    row.update(file=new_file, duplicate_of="" if row["sha256"] == kept_sha256 else kept_sha256)
            self._rewrite_manifest(rows)

    # ---- manifest -------------------------------------------------------------------------

    def append_rows(self, rows: list[dict]) -> None:
        """Append manifest rows (a header first when the manifest is new)."""
        with self.locked():
            self._append(self.manifest, MANIFEST_FIELDS,
                         [[("" if r.get(k) is None else r[k]) for k in MANIFEST_FIELDS] for r in rows],
                         sync=False)

    def rows(self) -> list[dict]:
        """The manifest's rows (a torn last line is ignored)."""
        with self.locked():
            return self._read_manifest()

    def upgrade_manifest(self) -> None:
        """Rewrite a manifest written by an older version (other columns) with today's columns."""
        with self.locked():
            if not self.manifest.exists() or not self.manifest.stat().st_size:
                return
            repair_partial_line(self.manifest)
            with open(self.manifest, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
            if tuple(header) != MANIFEST_FIELDS:
                self._rewrite_manifest(self._read_manifest())

    def _read_manifest(self) -> list[dict]:
        if not self.manifest.exists():
            return []
        with open(self.manifest, newline="", encoding="utf-8") as fh:
            return [r for r in csv.DictReader(fh) if r.get("sha256") is not None]

    def _rewrite_manifest(self, rows: list[dict]) -> None:
        """Replace the manifest atomically (caller holds the lock)."""
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=TMP_PREFIX)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, MANIFEST_FIELDS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.manifest)
        except BaseException:
            os.unlink(tmp)
            raise

    @staticmethod
    def _append(path: Path, header: tuple[str, ...], rows: list, sync: bool = True) -> None:
        """Append CSV rows, flushed to disk when ``sync`` (caller holds the lock)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            repair_partial_line(path)
        with open(path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if fh.tell() == 0:
                writer.writerow(header)
            writer.writerows(rows)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
