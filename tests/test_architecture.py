"""The import rules of ARCHITECTURE.md, checked on the source of every medcrawl module (AST, no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "medcrawl"
SHARED = ("medcrawl", "medcrawl.items", "medcrawl.config", "medcrawl.files", "medcrawl.settings")
FRAMEWORKS = ("scrapy", "twisted", "scrapy_redis", "scrapy_playwright")
OUTSIDE = ("training", "tests", "bench", "conftest")

# layer -> (medcrawl modules it may import, whether it may import Scrapy/Twisted)
RULES: dict[str, tuple[tuple[str, ...], bool]] = {
    "shared": ((*SHARED, "medcrawl.model"), False),
    "model": (("medcrawl", "medcrawl.items", "medcrawl.model"), False),
    "extract": (("medcrawl", "medcrawl.items", "medcrawl.model", "medcrawl.extract"), False),
    "samples": ((*SHARED, "medcrawl.model", "medcrawl.samples"), False),
    "oneoff": ((*SHARED, "medcrawl.model", "medcrawl.extract", "medcrawl.samples", "medcrawl.oneoff"), False),
    "scaleout": ((*SHARED, "medcrawl.model", "medcrawl.failures", "medcrawl.scaleout"), True),
    "crawl": ((*SHARED, "medcrawl.model", "medcrawl.extract", "medcrawl.scaleout", "medcrawl.failures",
               "medcrawl.executor", "medcrawl.extensions", "medcrawl.pipelines", "medcrawl.spiders"), True),
}


def layer_of(module: str) -> str:
    """The layer of a dotted medcrawl module name."""
    if module in SHARED or module == "medcrawl.__main__":
        return "oneoff" if module == "medcrawl.__main__" else "shared"
    part = module.split(".")[1]
    return part if part in RULES else "crawl"


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
        elif top == "medcrawl" and not _within(name, allowed):
            problems.append(f"{module}:{line} imports {name}: not allowed in the {layer} layer")
    return problems


def _within(name: str, allowed: tuple[str, ...]) -> bool:
    """True when ``name`` is one of ``allowed`` or inside one of the allowed packages."""
    for prefix in allowed:
        if name == prefix or (prefix != "medcrawl" and name.startswith(prefix + ".")):
            return True
    return False


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
])
def test_a_forbidden_import_is_reported(module: str, source: str, complaint: str):
    problems = violations(module, source)
    assert len(problems) == 1 and complaint in problems[0]


def test_type_checking_imports_do_not_count():
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from scrapy.settings import BaseSettings\n"
    assert violations("medcrawl.config", source) == []
    assert violations("medcrawl.config", "from scrapy.settings import BaseSettings") != []
