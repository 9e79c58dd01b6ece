"""Crawl throughput: the full medcrawl crawl vs a plain Scrapy ImagesPipeline crawl of the same site.

The generated site (pages in a link tree, 3 distinct JPEG/PNG images each) is served by
bench/serve.py (a threaded keep-alive static server) in its own process on 127.0.0.1. The arms alternate; both run with
politeness off (no AutoThrottle, no robots.txt, 64 concurrent requests). Images/s counts images
that came out of the crawl (medcrawl: rows labelled ok; plain: images stored) over Scrapy's
elapsed crawl time (start-up such as the model load excluded; the wall time is shown too).
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
TARGET_RATIO = 0.9


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--images", type=int, help="images on the site (default 6300; quick 60)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="extra Scrapy setting for both arms (repeatable)")
    args = p.parse_args(argv)
    extra = crawlkit.parse_settings(args.set)
    images = args.images or (60 if args.quick else 6300)
    root, pages = crawlkit.build_site(images)
    runs: dict[str, list[crawlkit.CrawlRun]] = {arm: [] for arm in ARMS}
    work = Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    try:
        with crawlkit.Server(root) as server:
            start = f"{server.base}/s{pages}/p0.html"
            for r in range(common.rounds(args, full=3, quick=1)):
                for arm in (ARMS if r % 2 == 0 else ARMS[::-1]):
                    run = crawlkit.run_crawl(arm, start, work / f"{arm}-{r}", extra)
                    print(f"round {r + 1} {arm}: {run.images} images in {run.crawl_s:.1f} s "
                          f"({run.rate:.0f}/s), wall {run.wall_s:.1f} s, peak RSS {run.peak_tree_mb:.0f} MB",
                          flush=True)
                    shutil.rmtree(work / f"{arm}-{r}" / "store", ignore_errors=True)
                    runs[arm].append(run)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for arm in ARMS:
        got = {run.images for run in runs[arm]}
        if got != {images}:
            print(f"warning: {arm} got {sorted(got)} of {images} images", file=sys.stderr)
    rates = {arm: [run.rate for run in runs[arm]] for arm in ARMS}
    figures = [Figure(f"{arm} rate", common.median(rates[arm]), "images/s") for arm in ARMS]
    figures += [Figure("medcrawl / plain", common.rate_ratio(rates, "medcrawl", "plain"), "x", TARGET_RATIO)]
    figures += [Figure(f"{arm} wall time", common.median([r.wall_s for r in runs[arm]]), "s",
                       note="process start to exit") for arm in ARMS]
    figures += [Figure(f"{arm} peak RSS", max(r.peak_tree_mb for r in runs[arm]), "MB") for arm in ARMS]
    return common.report(f"crawl ({pages} pages, {images} images)", figures, args,
                         {"pages": pages, "images": images,
                          "commands": {arm: crawlkit.shown_command(arm) for arm in ARMS}})


if __name__ == "__main__":
    sys.exit(main())
