"""Peak memory of the crawl process at a small and a large crawl (1,000 and 10,000 images).

The same generated site kind as bench_crawl (3 distinct JPEG/PNG images a page, served from a
separate process); the crawl runs as a child of a wrapper that reports the kernel's peak RSS
(``ru_maxrss``), while the summed RSS of the crawl and any children is sampled from /proc every
0.2 s; the larger of the two is reported. The plain ImagesPipeline crawl is the baseline.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from bench import common
from bench import crawlkit
from bench.common import Figure

ARMS = ("medcrawl", "plain")
TARGET_MB, TARGET_GROWTH = 1024.0, 1.10


def peak_mb(run: crawlkit.CrawlRun) -> float:
    return max(run.peak_rss_mb, run.peak_tree_mb)


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"),
                   help="images in the two crawls (default 1000 10000; quick 30 120)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="extra Scrapy setting for both arms (repeatable)")
    args = p.parse_args(argv)
    extra = crawlkit.parse_settings(args.set)
    small, large = args.sizes or ((30, 120) if args.quick else (1000, 10000))
    peaks: dict[tuple[str, int], list[float]] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        for size in (small, large):
            root, pages = crawlkit.build_site(size)
            with crawlkit.Server(root) as server:
                for r in range(common.rounds(args, full=1, quick=1)):
                    for arm in ARMS:
                        run = crawlkit.run_crawl(arm, f"{server.base}/s{pages}/p0.html",
                                                 work / f"{arm}-{size}-{r}", extra)
                        shutil.rmtree(work / f"{arm}-{size}-{r}", ignore_errors=True)
                        print(f"{arm} {size} images: {run.images} done in {run.crawl_s:.1f} s, peak RSS "
                              f"{run.peak_rss_mb:.0f} MB (process) / {run.peak_tree_mb:.0f} MB (tree, sampled)",
                              flush=True)
                        peaks.setdefault((arm, size), []).append(peak_mb(run))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak = {key: max(values) for key, values in peaks.items()}
    figures = []
    for arm in ARMS:
        target = TARGET_MB if arm == "medcrawl" else None
        figures += [Figure(f"{arm} peak RSS at {size}", peak[arm, size], "MB", target, higher_is_better=False)
                    for size in (small, large)]
        figures += [Figure(f"{arm} {large} / {small}", peak[arm, large] / peak[arm, small], "x",
                           TARGET_GROWTH if arm == "medcrawl" else None, higher_is_better=False)]
    figures += [Figure(f"medcrawl / plain at {large}", peak["medcrawl", large] / peak["plain", large], "x")]
    return common.report(f"crawl peak memory ({small} vs {large} images)", figures, args,
                         {"sizes": [small, large],
                          "commands": {arm: crawlkit.shown_command(arm) for arm in ARMS}})


if __name__ == "__main__":
    sys.exit(main())
