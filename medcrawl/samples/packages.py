"""Installed packages that ship sample images: whether they are there, where their files are, their licence."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medcrawl.config import samples_npm_dir

INSTALL_SCRIPT = "scripts/install_sample_packages.sh"


class MissingPackageError(RuntimeError):
    """A source's package is not installed."""


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
    return samples_npm_dir() / "node_modules"


@functools.lru_cache(maxsize=None)
def _licence_cached(kind: str, name: str) -> str:
    if kind == "deb":
        return deb_licence(name)
    if kind == "npm":
        package = json.loads((npm_root() / name / "package.json").read_text())
        return f"{package.get('license', 'unknown')} (npm package.json)"
    meta: Any = importlib.metadata.metadata(name)        # an email.message.Message
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
