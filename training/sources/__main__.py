"""``python -m training.sources build|list|kinds``: build the training data of the source registry,
list its sources, count its kinds."""

from __future__ import annotations

import argparse
import fcntl
import subprocess
import sys
from pathlib import Path

from training.sources import registry
from training.sources.build import Builder, manifest_rows, write_manifest
from training.sources.listing import (KIND_COLUMNS, SOURCE_COLUMNS, format_table, kind_table,
                                      read_manifest, source_table, write_csv)
from training.sources.sheets import contact_sheet
from training.sources.summary import skipped_text, write_summary

REPOSITORY = Path(__file__).resolve().parents[2]


def default_pack() -> Path:
    """../shared/data/train next to the repository (for a git worktree: next to its main checkout)."""
    pack = REPOSITORY.parent / "shared" / "data" / "train"
    common = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "--path-format=absolute",
                             "--git-common-dir"], capture_output=True, text=True).stdout.strip()
    main_checkout = Path(common).parent if common else REPOSITORY
    fallback = main_checkout.parent / "shared" / "data" / "train"
    return pack if pack.is_dir() or not fallback.is_dir() else fallback



def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.sources", description=__doc__)
    parser.add_argument("--registry", type=Path, default=registry.ROOT,
                        help="folder with pack.toml and registry/*.toml (default: this package's)")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build DATA from the registry (resumable)")
    build.add_argument("--repos", type=Path, required=True,
                       help="folder of git repositories named owner+name or owner/name")
    build.add_argument("--out", type=Path, required=True, help="the data folder to write")
    build.add_argument("--pack", type=Path, default=None,
                       help="the first pack's train/ folder (default: ../shared/data/train next to "
                            "the repository)")
    build.add_argument("--clone", action="store_true", help="clone missing repositories from GitHub")
    build.add_argument("--only", nargs="+", metavar="NAME", help="read only these sources afresh")
    build.add_argument("--sheets", type=Path, help="contact sheet folder (default: OUT/sheets)")
    build.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)   # tests: stop as if killed
    for name, text in (("list", "one line per source"), ("kinds", "per kind: upstreams, sources, images")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--data", type=Path, default=Path("data"),
                             help="a built data folder whose MANIFEST.csv gives the image counts "
                                  "(default: data)")
        command.add_argument("--format", choices=("table", "csv"), default="table")
    return parser.parse_args(argv)


def build(args, sources: list[registry.Source]) -> int:
    known = {source.name for source in sources}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        sys.exit(f"--only names unknown sources: {', '.join(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)
    lock = (args.out / ".build.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"another build is writing {args.out}; wait for it to end")
    builder = Builder(args.out, args.repos, args.pack or default_pack(), args.clone)
    outcomes = builder.run(sources, set(args.only) if args.only else None, args.stop_after)
    if args.stop_after is not None:
        return 3
    rows = manifest_rows(outcomes)
    write_manifest(args.out, rows)
    write_summary(args.out, outcomes, rows, sources)
    sheets = args.sheets or args.out / "sheets"
    for outcome in outcomes:
        target = sheets / f"{outcome.source.name}.png"
        if outcome.state is not None and (outcome.changed or not target.is_file()):
            kept = outcome.state.kept
            contact_sheet([args.out / c["path"] for c in kept], f"{outcome.source.name} "
                          f"({outcome.source.kind}): {len(kept)} written of {outcome.state.selected}",
                          skipped_text(outcome)[:120], target)
    for stale in sorted(sheets.glob("*.png")) if args.sheets is None else []:
        if stale.stem not in known:
            stale.unlink()
    failed = [outcome for outcome in outcomes if outcome.failed]
    print(f"{len(rows)} images from {len(outcomes) - len(failed)} sources in {args.out}"
          + (f"; {len(failed)} not built (see BUILD.md)" if failed else ""))
    return 0


def main(argv=None) -> int:
    args = parse(argv)
    try:
        sources = registry.load(args.registry)
    except registry.RegistryError as exc:
        sys.exit(str(exc))
    if args.command == "build":
        return build(args, sources)
    rows = read_manifest(args.data)
    if not rows:
        print(f"note: no {args.data / 'MANIFEST.csv'}: image counts are 0", file=sys.stderr)
    table, columns = ((source_table(sources, rows), SOURCE_COLUMNS) if args.command == "list"
                      else (kind_table(sources, rows), KIND_COLUMNS))
    if args.format == "csv":
        write_csv(table, columns, sys.stdout)
    else:
        print(format_table(table, columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
