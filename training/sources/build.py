"""Build the training data of the registry: ``DATA/<label>/<source>/<id>.<ext>`` and ``MANIFEST.csv``.

Sources are read in registry order, each file converted (``convert.py``) and judged against every
image kept before it (``dedupe.py``). A finished source leaves ``DATA/.build/<source>.json``: every
candidate image with its hashes and fingerprint, and the counts of what was skipped. A later run
reuses that state when the source's selection is unchanged, replaying the duplicate decisions
against the sources before it (a file newly found a duplicate is removed; one newly free is read
again), so an interrupted or extended build ends exactly as one uninterrupted build would. A source
killed half-way has no state and is read again from the start.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from medcrawl.nearduplicates import Fingerprint
from training.kinds import MEDICAL_KINDS, pack_kind
from training.sources.convert import Skip, convert
from training.sources.dedupe import Dedupe, fingerprint_fields, fingerprint_from
from training.sources.gitrepo import is_lfs_pointer
from training.sources.origins import OriginError, open_origin
from training.sources.registry import Source

BUILD_VERSION = 1
STATE_DIR = ".build"
MANIFEST_FIELDS = ("path", "tar", "label", "source", "modality", "width", "height", "sha256",
                   "origin_repo", "origin_path", "kind", "upstream", "commit")
SAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_ID = 120


@dataclass
class SourceState:
    """What one source gave: files selected, reasons for those skipped, every candidate image."""

    selection: str
    selected: int = 0
    skipped: Counter = field(default_factory=Counter)
    candidates: list[dict] = field(default_factory=list)

    @property
    def kept(self) -> list[dict]:
        return [c for c in self.candidates if not c["duplicate"]]

    def duplicates(self) -> Counter:
        return Counter(c["duplicate"] for c in self.candidates if c["duplicate"])

    def to_json(self) -> dict:
        return {"version": BUILD_VERSION, "selection": self.selection, "selected": self.selected,
                "skipped": dict(sorted(self.skipped.items())), "candidates": self.candidates}

    @classmethod
    def from_json(cls, data: dict) -> "SourceState":
        return cls(data["selection"], data["selected"], Counter(data["skipped"]), data["candidates"])


@dataclass
class Outcome:
    """One source's result in this run: its state, or why it was not built."""

    source: Source
    state: SourceState | None = None
    failed: str = ""
    changed: bool = False


class Builder:
    """One build of ``out`` from the registry's sources."""

    def __init__(self, out: Path, repos: Path | None, pack: Path, clone: bool = False, log=print):
        self.out, self.repos, self.pack, self.clone, self.log = out, repos, pack, clone, log
        self.dedupe = Dedupe()
        (out / STATE_DIR).mkdir(parents=True, exist_ok=True)

    def run(self, sources: list[Source], only: set[str] | None = None,
            stop_after: int | None = None) -> list[Outcome]:
        """Build (or reuse) every source in order; ``only`` limits which are read afresh."""
        self.remove_stale({source.name for source in sources})
        outcomes = []
        for number, source in enumerate(sources, 1):
            outcomes.append(self.source(source, only is None or source.name in only))
            if stop_after is not None and number >= stop_after:
                break
        return outcomes

    def source(self, source: Source, may_read: bool) -> Outcome:
        """Reuse the source's saved state if its selection is unchanged, else read it afresh."""
        try:
            origin = self.origin(source) if source.pack is not None else None
            key = self.selection_key(source, origin)
            state = self.load_state(source)
            if state is not None and state.selection == key:
                return Outcome(source, state, changed=self.replay(source, state, origin))
            if not may_read:
                self.forget(source.name)
                return Outcome(source, failed="not built (left out by --only)")
            return Outcome(source, self.read(source, origin or self.origin(source), key), changed=True)
        except OriginError as exc:
            self.log(f"{source.name}: {exc}")
            self.forget(source.name)       # the folders hold exactly what the manifest lists
            return Outcome(source, failed=str(exc))

    def origin(self, source: Source):
        return open_origin(source, self.repos, self.pack, self.clone)

    def selection_key(self, source: Source, origin) -> str:
        pinned = origin.fingerprint() if origin is not None else {}
        text = json.dumps([BUILD_VERSION, source.selection(), pinned], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    # --- reading a source afresh ---------------------------------------------------------------

    def read(self, source: Source, origin, key: str) -> SourceState:
        self.log(f"{source.name}: reading {source.pack and 'pack tar' or source.repo}")
        self.forget(source.name)
        state, used = SourceState(key), set()
        for item in origin.items():
            state.selected += 1
            reason, candidate, stored = self.candidate(source, item, used)
            if reason:
                state.skipped[reason] += 1
                continue
            candidate["duplicate"] = self.judge(source, candidate)
            if not candidate["duplicate"]:
                write_file(self.out / candidate["path"], stored)
            state.candidates.append(candidate)
        self.save_state(source, state)
        self.log(f"{source.name}: {len(state.kept)} written of {state.selected} selected")
        return state

    def candidate(self, source: Source, item, used: set[str]) -> tuple[str, dict, bytes]:
        """(skip reason, '' when none; the candidate's record; its stored bytes)."""
        if item.data is None:
            return "absent", {}, b""
        if is_lfs_pointer(item.data):
            return "lfs_pointer", {}, b""
        try:
            if source.pack is not None:
                stored, image = item.data, Image.open(io.BytesIO(item.data))
                image.load()
                path, width, height = item.extra["path"], image.width, image.height
            else:
                result = convert(item.data, source.transform, source.min_side)
                stored, image, width, height = result.data, result.image, result.width, result.height
                path = f"{source.label}/{source.name}/{unique_id(item.origin_path, used)}.{result.ext}"
        except Skip as skip:
            return skip.reason, {}, b""
        except Exception:  # noqa: BLE001 - a pack member Pillow cannot read
            return "undecodable", {}, b""
        return "", {
            "path": path, "origin_path": item.origin_path, "locator": item.locator,
            "tar": item.extra.get("tar", ""), "modality": item.extra.get("modality", ""),
            "width": width, "height": height, "sha256": hashlib.sha256(stored).hexdigest(),
            "original_sha256": hashlib.sha256(item.data).hexdigest(),
            **fingerprint_fields(Fingerprint.of(image)),
        }, stored

    def judge(self, source: Source, candidate: dict) -> str:
        return self.dedupe.judge(source.name, candidate["path"], candidate["sha256"],
                                 candidate["original_sha256"], fingerprint_from(candidate))

    # --- reusing a finished source -------------------------------------------------------------

    def replay(self, source: Source, state: SourceState, origin) -> bool:
        """Judge the saved candidates again; remove files now duplicates, read again those now kept."""
        changed = False
        for candidate in state.candidates:
            verdict = self.judge(source, candidate)
            target = self.out / candidate["path"]
            if verdict != candidate["duplicate"]:
                changed = True
                candidate["duplicate"] = verdict
            if verdict:
                target.unlink(missing_ok=True)
            elif not target.is_file():
                origin = origin or self.origin(source)
                self.restore(source, candidate, origin)
                changed = True
        if changed:
            self.save_state(source, state)
        return changed

    def restore(self, source: Source, candidate: dict, origin) -> None:
        data = origin.read(candidate["locator"])
        stored = data if source.pack is not None else convert(data, source.transform, source.min_side).data
        if hashlib.sha256(stored).hexdigest() != candidate["sha256"]:
            raise OriginError(f"{candidate['origin_path']} no longer gives the same image; rebuild "
                              f"the source (delete {self.state_path(source)})")
        write_file(self.out / candidate["path"], stored)

    # --- files -------------------------------------------------------------------------------------

    def state_path(self, source: Source | str) -> Path:
        name = source if isinstance(source, str) else source.name
        return self.out / STATE_DIR / f"{name}.json"

    def load_state(self, source: Source) -> SourceState | None:
        try:
            data = json.loads(self.state_path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return SourceState.from_json(data) if data.get("version") == BUILD_VERSION else None

    def save_state(self, source: Source, state: SourceState) -> None:
        write_file(self.state_path(source), json.dumps(state.to_json()).encode())

    def remove_stale(self, names: set[str]) -> None:
        """Forget sources no longer in the registry: their state and their folder."""
        for path in sorted((self.out / STATE_DIR).glob("*.json")):
            if path.stem not in names:
                self.log(f"{path.stem}: no longer registered, removed")
                self.forget(path.stem)

    def forget(self, name: str) -> None:
        """Remove a source's state and images (both labels: its label may have changed)."""
        self.state_path(name).unlink(missing_ok=True)
        for label in ("medical", "non-medical"):
            shutil.rmtree(self.out / label / name, ignore_errors=True)


def unique_id(origin_path: str, used: set[str]) -> str:
    """A file name from the origin path (folders joined by '__'), unique within its source."""
    stem = origin_path.rsplit(".", 1)[0] if "." in origin_path.rsplit("/", 1)[-1] else origin_path
    name = SAFE.sub("_", stem.replace("/", "__")).strip("._") or "image"
    if len(name) > MAX_ID:
        name = name[-MAX_ID:].lstrip("._")
    candidate, number = name, 1
    while candidate.lower() in used:
        number += 1
        candidate = f"{name}-{number}"
    used.add(candidate.lower())
    return candidate


def write_file(path: Path, data: bytes) -> None:
    """Write through a temporary name, so a killed build never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def manifest_rows(outcomes: list[Outcome]) -> list[dict]:
    """The MANIFEST.csv rows of every kept image, in registry order."""
    rows = []
    for outcome in outcomes:
        source = outcome.source
        for candidate in outcome.state.kept if outcome.state else []:
            if source.pack is not None:
                kind = pack_kind(candidate["modality"], candidate["origin_path"])
                modality = candidate["modality"]
            else:
                kind, modality = source.kind, MEDICAL_KINDS.get(source.kind, source.kind)
            rows.append({
                "path": candidate["path"], "tar": candidate["tar"], "label": source.label,
                "source": source.name, "modality": modality, "width": candidate["width"],
                "height": candidate["height"], "sha256": candidate["sha256"],
                "origin_repo": source.repo, "origin_path": candidate["origin_path"], "kind": kind,
                "upstream": source.upstream, "commit": source.commit})
    return rows


def write_manifest(out: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_file(out / "MANIFEST.csv", text.getvalue().encode("utf-8"))
