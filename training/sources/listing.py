"""The registry as tables: one line per source, and per kind its upstreams, sources and images.

Image counts are those of a built ``DATA/MANIFEST.csv`` (after selection and de-duplication); a
source not in the manifest counts 0. Per kind, the pack's per-image kinds are used (medmnist64
gives CT, MRI, chest and bone X-rays), and a kind with fewer than ``MIN_UPSTREAMS`` distinct
upstream datasets among its built sources is marked.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

from training.kinds import KINDS, label_of
from training.sources.registry import Source

SOURCE_COLUMNS = ("name", "label", "kind", "upstream", "repo", "images")
KIND_COLUMNS = ("kind", "label", "upstreams", "sources", "images", "below_3")
MIN_UPSTREAMS = 3


def read_manifest(data: Path) -> list[dict]:
    path = data / "MANIFEST.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def source_table(sources: list[Source], rows: list[dict]) -> list[dict]:
    counts = Counter(row["source"] for row in rows)
    return [{"name": s.name, "label": s.label, "kind": s.kind, "upstream": s.upstream,
             "repo": s.repo, "images": counts[s.name]} for s in sources]


def kind_table(sources: list[Source], rows: list[dict]) -> list[dict]:
    """Per kind: distinct upstreams and sources that have images of it, and the image count."""
    upstream = {source.name: source.upstream for source in sources}
    images: Counter = Counter()
    names: dict[str, set] = defaultdict(set)
    for row in rows:
        images[row["kind"]] += 1
        names[row["kind"]].add(row["source"])
    table = []
    for kind in KINDS:
        upstreams = {upstream.get(name, name) for name in names[kind]}
        table.append({"kind": kind, "label": label_of(kind), "upstreams": len(upstreams),
                      "sources": len(names[kind]), "images": images[kind],
                      "below_3": "yes" if len(upstreams) < MIN_UPSTREAMS else ""})
    return table


def write_csv(table: list[dict], columns: tuple[str, ...], stream) -> None:
    writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)


def format_table(table: list[dict], columns: tuple[str, ...], limit: int = 48) -> str:
    """A plain text table, columns padded, long cells cut to ``limit`` characters."""
    cells = [[str(row[c])[:limit] for c in columns] for row in table]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) if v.isdigit() else v.ljust(w) for v, w in zip(r, widths))
              for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(table: list[dict], columns: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in table]
    return "\n".join(lines)
