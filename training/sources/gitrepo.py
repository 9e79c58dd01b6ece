"""Read files of a pinned commit from a local git repository: one ``ls-tree``, one ``cat-file --batch``."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

LFS_POINTER = b"version https://git-lfs"
MAX_POINTER_SIZE = 1024


class RepoError(Exception):
    """A repository or commit that cannot be read, with the reason."""


@dataclass(frozen=True)
class Blob:
    """One file of the commit: its path and bytes (``None`` when the snapshot lacks the object)."""

    path: str
    oid: str
    data: bytes | None


def is_lfs_pointer(data: bytes) -> bool:
    """A Git LFS pointer file (the repository keeps the real bytes elsewhere)."""
    return len(data) <= MAX_POINTER_SIZE and data.startswith(LFS_POINTER)


def find_git_dir(repos: Path, repo: str) -> Path | None:
    """The git directory of ``owner/name`` under ``repos``: ``owner+name`` or ``owner/name``, each
    a git directory itself or holding ``repo/``, ``.git`` or ``repo/.git``."""
    owner, name = repo.split("/", 1)
    for base in (repos / f"{owner}+{name}", repos / owner / name):
        for candidate in (base, base / "repo", base / ".git", base / "repo" / ".git"):
            if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
                return candidate
    return None


def clone(repos: Path, repo: str, commit: str) -> Path:
    """Clone ``owner/name`` from GitHub as a bare repository ``repos/owner+name`` (fetch if it lacks
    the commit) and return its git directory."""
    git_dir = find_git_dir(repos, repo) or repos / repo.replace("/", "+")
    url = f"https://github.com/{repo}.git"
    if not (git_dir / "HEAD").is_file():
        repos.mkdir(parents=True, exist_ok=True)
        _git(["clone", "--bare", "--quiet", url, str(git_dir)], None)
    if not has_commit(git_dir, commit):
        _git(["fetch", "--quiet", url, commit], git_dir)
    return git_dir


def has_commit(git_dir: Path, commit: str) -> bool:
    result = subprocess.run(["git", f"--git-dir={git_dir}", "cat-file", "-e", f"{commit}^{{commit}}"],
                            capture_output=True)
    return result.returncode == 0


def list_files(git_dir: Path, commit: str) -> dict[str, str]:
    """path -> blob id of every file of the commit (submodules and links left out)."""
    if not has_commit(git_dir, commit):
        raise RepoError(f"commit {commit} is not in {git_dir}")
    out = _git(["ls-tree", "-r", "-z", "--full-tree", commit], git_dir)
    files = {}
    for entry in out.split(b"\0"):
        if entry:
            meta, _, path = entry.partition(b"\t")
            mode, kind, oid = meta.split()
            if kind == b"blob" and mode in (b"100644", b"100755"):
                files[path.decode("utf-8", "surrogateescape")] = oid.decode()
    return files


def read_blobs(git_dir: Path, files: Iterable[tuple[str, str]]) -> Iterator[Blob]:
    """The bytes of each (path, blob id), in order, from one ``git cat-file --batch`` process."""
    process = subprocess.Popen(["git", f"--git-dir={git_dir}", "cat-file", "--batch"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for path, oid in files:
            process.stdin.write(oid.encode() + b"\n")
            process.stdin.flush()
            header = process.stdout.readline().split()
            if len(header) < 3 or header[1] != b"blob":
                yield Blob(path, oid, None)          # "<oid> missing": absent from the snapshot
                continue
            data = _read_exactly(process.stdout, int(header[2]))
            process.stdout.read(1)                   # the newline after the contents
            yield Blob(path, oid, data)
    finally:
        process.stdin.close()
        process.kill()
        process.wait()


def _read_exactly(stream, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise RepoError("git cat-file ended early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _git(args: list[str], git_dir: Path | None) -> bytes:
    command = ["git"] + ([f"--git-dir={git_dir}"] if git_dir else []) + args
    result = subprocess.run(command, capture_output=True)
    if result.returncode:
        raise RepoError(f"{' '.join(args[:2])} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout
