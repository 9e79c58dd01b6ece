"""Where a source's files come from: a pinned commit of a git repository, or a tar of the first pack.

Both give ``Item`` records in a fixed order: the path in the origin, a locator that finds the same
bytes again (a blob id, a tar member), and the bytes (``None`` when a snapshot lacks them).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from training.sources import gitrepo
from training.sources.registry import Source
from training.sources.select import select


@dataclass(frozen=True)
class Item:
    origin_path: str
    locator: str
    data: bytes | None
    extra: dict            # pack rows: the manifest's path, tar and modality


class OriginError(Exception):
    """A source whose origin cannot be read (repository or commit or tar missing)."""


class RepoOrigin:
    """The selected files of a source's pinned commit, from a git directory under ``repos``."""

    def __init__(self, source: Source, repos: Path, clone: bool = False):
        self.source = source
        git_dir = gitrepo.find_git_dir(repos, source.repo)
        if clone:
            git_dir = gitrepo.clone(repos, source.repo, source.commit)
        if git_dir is None:
            raise OriginError(f"no git repository for {source.repo} under {repos} "
                              f"(as {source.repo.replace('/', '+')} or {source.repo}; or use --clone)")
        self.git_dir = git_dir
        try:
            files = gitrepo.list_files(git_dir, source.commit)
        except gitrepo.RepoError as exc:
            raise OriginError(str(exc)) from None
        self.files = {path: files[path] for path in select(source, files)}

    def items(self) -> Iterator[Item]:
        for blob in gitrepo.read_blobs(self.git_dir, self.files.items()):
            yield Item(blob.path, blob.oid, blob.data, {})

    def read(self, locator: str) -> bytes | None:
        return next(gitrepo.read_blobs(self.git_dir, [("", locator)])).data

    def fingerprint(self) -> dict:
        return {}


class PackOrigin:
    """One source of the first pack: its MANIFEST.csv rows (sorted by path) and tar members."""

    def __init__(self, source: Source, pack: Path):
        self.source = source
        manifest = pack / "MANIFEST.csv"
        if not manifest.is_file():
            raise OriginError(f"no first pack at {pack} (MANIFEST.csv missing; set --pack)")
        self.rows = pack_rows(manifest).get(source.pack, [])
        if not self.rows:
            raise OriginError(f"the first pack at {pack} has no images of {source.pack!r}")
        self.tar = pack.parent / self.rows[0]["tar"] if (pack.parent / self.rows[0]["tar"]).is_file() \
            else pack / Path(self.rows[0]["tar"]).name
        if not self.tar.is_file():
            raise OriginError(f"tar {self.rows[0]['tar']} of {source.pack!r} missing under {pack}")

    def items(self) -> Iterator[Item]:
        with tarfile.open(self.tar) as tar:
            for row in self.rows:
                yield Item(row["origin_path"], row["path"], _member(tar, row["path"]),
                           {"path": row["path"], "tar": row["tar"], "modality": row["modality"]})

    def read(self, locator: str) -> bytes | None:
        with tarfile.open(self.tar) as tar:
            return _member(tar, locator)

    def fingerprint(self) -> dict:
        """What pins the pack's images: the manifest's sha256 of each, and the tar's size."""
        listed = "".join(sorted(row["sha256"] for row in self.rows))
        return {"tar_size": self.tar.stat().st_size,
                "sha256": hashlib.sha256(listed.encode()).hexdigest()}


@functools.lru_cache(maxsize=4)
def pack_rows(manifest: Path) -> dict[str, list[dict]]:
    """The first pack's MANIFEST.csv rows by source, each source's sorted by path."""
    by_source: dict[str, list[dict]] = {}
    with manifest.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            by_source.setdefault(row["source"], []).append(row)
    return {name: sorted(rows, key=lambda row: row["path"]) for name, rows in by_source.items()}


def _member(tar: tarfile.TarFile, name: str) -> bytes | None:
    try:
        handle = tar.extractfile(name)
    except KeyError:
        return None
    return handle.read() if handle else None


def open_origin(source: Source, repos: Path | None, pack: Path, clone: bool = False):
    if source.pack is not None:
        return PackOrigin(source, pack)
    if repos is None:
        raise OriginError("no --repos folder given")
    return RepoOrigin(source, repos, clone)
