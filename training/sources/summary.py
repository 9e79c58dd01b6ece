"""``DATA/BUILD.md``: per source what was selected, written and skipped (by reason), and per kind
the upstreams, sources and images."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from training.sources.build import Outcome, write_file
from training.sources.listing import KIND_COLUMNS, kind_table, markdown_table


def skipped_text(outcome: Outcome) -> str:
    """'lfs_pointer 3, near duplicate of pack-x 2, ...' for one source ('' when nothing was skipped)."""
    state = outcome.state
    parts = [f"{reason} {count}" for reason, count in sorted(state.skipped.items())]
    for verdict, count in sorted(state.duplicates().items()):
        how, other = verdict.split(":", 1)
        parts.append(f"{how} duplicate of {'itself' if other == outcome.source.name else other} {count}")
    return ", ".join(parts)


def build_md(outcomes: list[Outcome], rows: list[dict], sources) -> str:
    built = [o for o in outcomes if o.state is not None]
    labels = Counter(row["label"] for row in rows)
    lines = ["# Training data built from the source registry", "",
             f"{len(rows):,} images from {sum(1 for o in built if o.state.kept)} sources "
             f"({labels['medical']:,} medical, {labels['non-medical']:,} non-medical); "
             "MANIFEST.csv lists each one, sheets/ shows each source.", "",
             "## Sources", "",
             "| source | label | kind | selected | written | skipped (by reason) |", "|---|---|---|---|---|---|"]
    for outcome in built:
        s = outcome.source
        lines.append(f"| {s.name} | {s.label} | {s.kind} | {outcome.state.selected} | "
                     f"{len(outcome.state.kept)} | {skipped_text(outcome)} |")
    failed = [o for o in outcomes if o.failed]
    if failed:
        lines += ["", "## Not built", ""] + [f"- {o.source.name}: {o.failed}" for o in failed]
    lines += ["", "## Kinds", "", "Upstreams: distinct upstream datasets with images of the kind; "
              "below_3 marks kinds with fewer than three.", "",
              markdown_table(kind_table(sources, rows), KIND_COLUMNS), ""]
    return "\n".join(lines)


def write_summary(out: Path, outcomes: list[Outcome], rows: list[dict], sources) -> None:
    write_file(out / "BUILD.md", build_md(outcomes, rows, sources).encode("utf-8"))
