"""The training-source registry: ``pack.toml`` and ``registry/*.toml`` as validated ``Source`` records.

Every source is one ``[[source]]`` table (the format: training/sources/README.md). The registry's
order is the builder's order, which decides who keeps an image that two sources share: the first
pack's sources first (``pack.toml``), then the files of ``registry/`` in sorted order, entries in
file order. Everything is checked once, here, and every problem is reported with its file and
source name.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from training.kinds import KINDS, label_of

ROOT = Path(__file__).resolve().parent
TRANSFORMS = ("left-half", "right-half", "first-square", "middle-frame", "dicom")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".pgm", ".ppm", ".webp")
DICOM_SUFFIXES = (".dcm", ".dicom")
DEFAULT_SEED = 1234
DEFAULT_MIN_SIDE = 32
# Held out for evaluation: never a training source, whatever the entry says.
RESERVED_REPOS = (
    "TongxinWang0405/BMI702_project", "mipple1986/data", "epostIt/MachineLearning",
    "agchung/Figure1-COVID-chestxray-dataset", "kianpaya/Brain-tumor-cnn",
    "suyash091/covid-chestxray-dataset", "Zzz512/MLUA", "zhixuhao/unet",
    "atiaisaac/flowers_classification", "datitran/raccoon_dataset", "Shyam-daniel/testing12",
    "zzzDavid/ICDAR-2019-SROIE", "hjnilsson/country-flags", "chandrikadeb7/Face-Mask-Detection",
)
# The first pack's sources that predate the reservation of their repository, and stay.
PACK_EXCEPTIONS = {"faces-mask": "chandrikadeb7/Face-Mask-Detection"}

NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
REQUIRED = ("name", "label", "kind", "upstream", "repo", "license", "note")
OPTIONAL = ("commit", "include", "exclude", "cap", "per_folder", "seed", "transform", "min_side",
            "research_only", "pack")


class RegistryError(ValueError):
    """The registry has problems; ``problems`` lists each one as 'file: source: reason'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("training-source registry is invalid:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Source:
    """One training source: where its images come from, which of them, and what they are."""

    name: str
    label: str
    kind: str
    upstream: str
    repo: str
    license: str
    note: str
    commit: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    cap: int | None = None
    per_folder: int | None = None
    seed: int = DEFAULT_SEED
    transform: str | None = None
    min_side: int = DEFAULT_MIN_SIDE
    research_only: bool = False
    pack: str | None = None          # a source of the first pack: its name there
    file: str = field(default="", compare=False)

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The file endings this source reads."""
        return DICOM_SUFFIXES if self.transform == "dicom" else IMAGE_SUFFIXES

    def selection(self) -> dict:
        """What decides which files are read and how they are stored (the builder's reuse key)."""
        return {"repo": self.repo, "commit": self.commit, "include": list(self.include),
                "exclude": list(self.exclude), "cap": self.cap, "per_folder": self.per_folder,
                "seed": self.seed, "transform": self.transform, "min_side": self.min_side,
                "pack": self.pack, "label": self.label}


def load(root: str | Path = ROOT) -> list[Source]:
    """Every source of ``root/pack.toml`` and ``root/registry/*.toml``, in registry order, validated."""
    root = Path(root)
    files = ([root / "pack.toml"] if (root / "pack.toml").is_file() else []) \
        + sorted((root / "registry").glob("*.toml"))
    sources, problems = [], []
    for path in files:
        try:
            tables = tomllib.loads(path.read_text(encoding="utf-8")).get("source", [])
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{path.name}: not valid TOML ({exc})")
            continue
        for number, table in enumerate(tables, 1):
            where = f"{path.name}: source {table.get('name', f'#{number}')!r}"
            found = check(table)
            problems += [f"{where}: {reason}" for reason in found]
            if not found:
                sources.append(make(table, path.name))
    problems += duplicates(sources)
    if problems:
        raise RegistryError(problems)
    return sources


def make(table: dict, file: str) -> Source:
    lists = {key: tuple(table[key]) for key in ("include", "exclude") if key in table}
    return Source(**{**table, **lists, "file": file})


def duplicates(sources: list[Source]) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for source in sources:
        if source.name in seen:
            problems.append(f"{source.file}: source {source.name!r}: duplicate name "
                            f"(also in {seen[source.name]})")
        seen.setdefault(source.name, source.file)
    return problems


def check(table: dict) -> list[str]:
    """The reasons one ``[[source]]`` table is not a valid source (empty when it is)."""
    problems = [f"missing {key}" for key in REQUIRED if key not in table]
    problems += [f"unknown field {key!r}" for key in table if key not in REQUIRED + OPTIONAL]
    problems += [f"{key} must be text" for key in REQUIRED + ("commit", "transform", "pack")
                 if key in table and not isinstance(table[key], str)]
    if problems:
        return problems
    return check_names(table) + check_origin(table) + check_selection(table)


def check_names(table: dict) -> list[str]:
    problems = []
    if not NAME.match(table["name"]):
        problems.append("name must be lowercase letters, digits and single hyphens")
    if table["kind"] not in KINDS:
        problems.append(f"unknown kind {table['kind']!r} (known: {', '.join(KINDS)})")
    elif label_of(table["kind"]) != table["label"]:
        problems.append(f"label {table['label']!r} disagrees with kind {table['kind']!r} "
                        f"(a {label_of(table['kind'])} kind)")
    problems += [f"{key} is empty" for key in ("upstream", "license", "note") if not table[key].strip()]
    return problems


def check_origin(table: dict) -> list[str]:
    problems = []
    repo, commit, pack = table["repo"], table.get("commit", ""), table.get("pack")
    if not REPO.match(repo):
        problems.append(f"repo {repo!r} is not owner/name")
    reserved = {name.lower() for name in RESERVED_REPOS}
    allowed = pack is not None and PACK_EXCEPTIONS.get(table["name"], "").lower() == repo.lower()
    if repo.lower() in reserved and not allowed:
        problems.append(f"repo {repo} is reserved for evaluation and is never a training source")
    if pack is None and not COMMIT.match(commit):
        problems.append(f"commit {commit!r} is not 40 lowercase hex digits "
                        "(pin it: git --git-dir=G rev-parse HEAD)")
    if pack is not None and commit and not COMMIT.match(commit):
        problems.append(f"commit {commit!r} is neither empty nor 40 lowercase hex digits")
    return problems


def check_selection(table: dict) -> list[str]:
    problems = []
    for key in ("include", "exclude"):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            problems.append(f"{key} must be a list of glob patterns")
    if table.get("pack") is None and not table.get("include"):
        problems.append("include is missing or empty (a repository source names its files)")
    for key, low in (("cap", 1), ("per_folder", 1), ("min_side", 1), ("seed", 0)):
        value = table.get(key, low)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            problems.append(f"{key} must be a whole number >= {low}, not {value!r}")
    if table.get("transform") is not None and table["transform"] not in TRANSFORMS:
        problems.append(f"unknown transform {table['transform']!r} (known: {', '.join(TRANSFORMS)})")
    if not isinstance(table.get("research_only", False), bool):
        problems.append("research_only must be true or false")
    return problems
