"""Harvest report: rows/s of `medcrawl report` on a generated 10,000-row feed and its store.

The feed has 10,000 rows (quick: 1,000) over 2,000 distinct stored images (quick: 100), 5% error
rows, three sites and three modalities. Figures: the whole report with no thumbnails yet (cold)
and with them already made (warm), and thumbnail making alone on all distinct images with the
default thread pool against one thread (the baseline, same images, same run).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

from bench import common
from bench.common import Figure

TARGET_RATE = 1000.0           # rows/s for the cold report: 10,000 rows in 10 s
MODALITIES = ("xray", "ct", "mri")


def write_harvest(rows: int, distinct: int, size: tuple[int, int]) -> Path:
    """``feed.jsonl`` + ``store/full/<sha>.<ext>`` (cached between runs)."""
    folder, done = common.cached_dir("report", {"rows": rows, "distinct": distinct, "size": size})
    if done:
        return folder
    (folder / "store" / "full").mkdir(parents=True, exist_ok=True)
    factory, rng = common.ImageFactory(seed=3), random.Random(3)
    images = []
    for fmt in common.image_formats(distinct, 0.25):
        data = factory.encode(*size, fmt)
        sha = hashlib.sha256(data).hexdigest()
        path = f"full/{sha}.{'jpg' if fmt == 'JPEG' else 'png'}"
        (folder / "store" / path).write_bytes(data)
        images.append((sha, path, fmt, rng.random()))
    with open(folder / "feed.jsonl", "w", encoding="utf-8") as fh:
        for i in range(rows):
            fh.write(json.dumps(feed_row(i, images[i % distinct], rng)) + "\n")
    common.mark_complete(folder)
    return folder


def feed_row(i: int, image: tuple, rng: random.Random) -> dict:
    sha, path, fmt, p = image
    site = f"https://site{i % 3}.example"
    row = {"image_url": f"{site}/img/{i}.{path.rsplit('.', 1)[1]}", "source_url": f"{site}/page/{i // 20}",
           "source_type": "html", "path": path, "sha256": sha, "format": fmt, "status": "ok",
           "label": "medical" if p >= 0.5 else "non-medical", "medical_probability": p,
           "confidence": max(p, 1 - p), "modality": MODALITIES[i % 3] if p >= 0.5 else "", "error": ""}
    if rng.random() < 0.05:
        row.update(status="error", error=rng.choice(["http_404", "truncated", "not_an_image"]),
                   label="", medical_probability=None, confidence=None, modality="", sha256="", path="")
    return row


def report_once(folder: Path, out: Path) -> int:
    from medcrawl.oneoff.harvest import Harvest
    from medcrawl.oneoff.report import write_report
    harvest = Harvest.open(folder / "feed.jsonl", folder / "store")
    write_report(harvest, out)
    return len(harvest.rows)


def thumbs_once(folder: Path, out: Path, workers: int | None) -> int:
    from medcrawl.oneoff.harvest import Harvest, thumbnails
    harvest = Harvest.open(folder / "feed.jsonl", folder / "store")
    return len(thumbnails(list(harvest.images.values()), out, workers=workers))


def main(argv=None) -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    rows, distinct, size = (1000, 100, (320, 240)) if args.quick else (10_000, 2000, (800, 600))
    folder = write_harvest(rows, distinct, size)
    rates: dict[str, list[float]] = {"cold": [], "warm": [], "threads": [], "one": []}
    for _ in range(common.rounds(args, full=3, quick=1)):
        work = Path(tempfile.mkdtemp(prefix="bench-report-"))
        try:
            seconds, n = common.timed(report_once, folder, work / "report.html")
            rates["cold"].append(n / seconds)
            seconds, n = common.timed(report_once, folder, work / "report.html")
            rates["warm"].append(n / seconds)
            for name, workers in (("threads", None), ("one", 1)):
                seconds, made = common.timed(thumbs_once, folder, work / name, workers)
                rates[name].append(made / seconds)
        finally:
            shutil.rmtree(work)
    figures = [Figure("report rate cold", common.median(rates["cold"]), "rows/s", TARGET_RATE),
               Figure("report rate warm", common.median(rates["warm"]), "rows/s"),
               Figure("thumbnail rate pool", common.median(rates["threads"]), "images/s"),
               Figure("thumbnail rate 1 thread", common.median(rates["one"]), "images/s"),
               Figure("pool / 1 thread", common.rate_ratio(rates, "threads", "one"), "x")]
    return common.report(f"Harvest report ({rows} rows, {distinct} distinct images "
                         f"{size[0]}x{size[1]})", figures, args, {"rows": rows, "distinct": distinct})


if __name__ == "__main__":
    sys.exit(main())
