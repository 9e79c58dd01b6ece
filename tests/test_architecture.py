"""The import rules of ARCHITECTURE.md, checked on the source of every medcrawl module (AST, no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "medcrawl"
# Top-level modules outside the crawl layer (every other top-level module belongs to the crawl).
# A new Scrapy-free module that several layers use goes into SHARED, here and in ARCHITECTURE.md.
SCHEMA = ("medcrawl", "medcrawl.items", "medcrawl.labels")
SHARED = ("medcrawl.config", "medcrawl.files", "medcrawl.corrections", "medcrawl.settings",
          "medcrawl.addresses", "medcrawl.nearduplicates", "medcrawl.splits", "medcrawl.dedupe",
          "medcrawl.publish")
FRAMEWORKS = ("scrapy", "twisted", "scrapy_redis", "scrapy_playwright")
OUTSIDE = ("training", "tests", "bench", "conftest")

# layer -> (layers it may import, whether it may import Scrapy/Twisted)
RULES: dict[str, tuple[frozenset[str], bool]] = {
    "schema": (frozenset({"schema"}), False),
    "shared": (frozenset({"schema", "shared", "model"}), False),
    "model": (frozenset({"schema", "model"}), False),
    "extract": (frozenset({"schema", "model", "extract"}), False),
    "samples": (frozenset({"schema", "shared", "model", "extract", "samples"}), False),
    "oneoff": (frozenset({"schema", "shared", "model", "extract", "samples", "oneoff"}), False),
    "scaleout": (frozenset({"schema", "shared", "model", "scaleout"}), True),
    "crawl": (frozenset({"schema", "shared", "model", "extract", "scaleout", "crawl"}), True),
}
# Layers that may use only part of the model layer: image decoding, never the model API.
MODEL_PART = {"extract": ("medcrawl.model.images",), "samples": ("medcrawl.model.images",)}


def layer_of(module: str) -> str:
    """The layer of a dotted medcrawl module name (or of a name imported from a module)."""
    if module == "medcrawl.__main__":
        return "oneoff"
    parts = module.split(".")
    if len(parts) == 1 or module in SCHEMA or module.startswith("medcrawl.items."):
        return "schema"
    if any(module == name or module.startswith(name + ".") for name in SHARED):
        return "shared"
    return parts[1] if parts[1] in RULES else "crawl"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of every import that runs (``if TYPE_CHECKING:`` blocks skipped)."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names if not a.name.startswith("__")] \
                if base == "medcrawl" else []      # `from medcrawl import config`: judged by config
            found.extend((node.lineno, name) for name in names or [base])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """Every import of ``source`` that breaks the rules for ``module``'s layer."""
    layer = layer_of(module)
    allowed, frameworks = RULES[layer]
    problems = []
    for line, name in imports(source, module, is_package):
        top = name.split(".")[0]
        if top in OUTSIDE:
            problems.append(f"{module}:{line} imports {name}: medcrawl never imports {top}")
        elif top in FRAMEWORKS and not frameworks:
            problems.append(f"{module}:{line} imports {name}: the {layer} layer runs without Scrapy/Twisted")
        elif top == "medcrawl" and layer_of(name) not in allowed:
            problems.append(f"{module}:{line} imports {name} ({layer_of(name)} layer): not allowed in the "
                            f"{layer} layer, which imports {', '.join(sorted(allowed))} (ARCHITECTURE.md)")
        elif top == "medcrawl" and layer_of(name) == "model" and layer in MODEL_PART \
                and not name.startswith(MODEL_PART[layer]):
            problems.append(f"{module}:{line} imports {name}: the {layer} layer uses only "
                            f"{', '.join(MODEL_PART[layer])} of the model layer (ARCHITECTURE.md)")
    return problems


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_module_follows_the_import_rules(path: Path):
    module = module_name(path)
    assert violations(module, path.read_text(encoding="utf-8"), path.name == "__init__.py") == []


def test_every_layer_has_modules():
    layers = {layer_of(module_name(p)) for p in MODULES}
    assert layers == set(RULES)


@pytest.mark.parametrize("module, source, complaint", [
    ("medcrawl.model.images", "import scrapy", "without Scrapy"),
    ("medcrawl.model.labelling", "from twisted.internet import reactor", "without Scrapy"),
    ("medcrawl.extract.pdf", "from medcrawl.pipelines.store import store_uri", "not allowed"),
    ("medcrawl.model.classifier", "from medcrawl.config import Config", "not allowed"),
    ("medcrawl.pipelines.dataset", "from medcrawl.oneoff.writers import MedicalExport", "not allowed"),
    ("medcrawl.spiders.site", "from medcrawl.oneoff import inputs", "not allowed"),
    ("medcrawl.scaleout.journal", "from medcrawl.pipelines.store import store_uri", "not allowed"),
    ("medcrawl.oneoff.demo", "from training import package_data", "never imports training"),
    ("medcrawl.oneoff.ui", "import scrapy.settings", "without Scrapy"),
    ("medcrawl.model.labelling", "from ..oneoff import cli", "not allowed"),
    ("medcrawl.samples.hard", "from medcrawl.model.classifier import Classifier", "uses only"),
    ("medcrawl.extract.html", "from medcrawl.model import labelling", "uses only"),
    ("medcrawl.labels", "from medcrawl.model.images import open_image", "not allowed"),
])
def test_a_forbidden_import_is_reported(module: str, source: str, complaint: str):
    problems = violations(module, source)
    assert len(problems) == 1 and complaint in problems[0]


@pytest.mark.parametrize("module, source", [
    ("medcrawl.pipelines.store", "from medcrawl.middlewares import Anything"),   # a new crawl module
    ("medcrawl.oneoff.cli", "from medcrawl import __version__, config"),
    ("medcrawl.model.labelling", "from ..items import ImageItem"),
    ("medcrawl.scaleout.contentindex", "from medcrawl.config import IndexConfig"),
    ("medcrawl.samples.dicom", "from medcrawl.extract.dicom import render_frame"),
    ("medcrawl.samples.hard", "from medcrawl.labels import MEDICAL, NON_MEDICAL"),
    ("medcrawl.extract.pdf", "from medcrawl.model.images import DEFAULT_MAX_PIXELS"),
])
def test_an_allowed_import_is_not_reported(module: str, source: str):
    assert violations(module, source) == []


def test_type_checking_imports_do_not_count():
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from scrapy.settings import BaseSettings\n"
    assert violations("medcrawl.config", source) == []
    assert violations("medcrawl.config", "from scrapy.settings import BaseSettings") != []
