"""Crawl benchmarks' shared parts: a generated site, its server process, and a measured crawl run."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import common

REPO = Path(__file__).resolve().parent.parent
PLAIN_SPIDER = Path(__file__).resolve().parent / "plain_spider.py"
SERVE = Path(__file__).resolve().parent / "serve.py"
PER_PAGE = 3
# Politeness off and concurrency up, identically for both arms.
FAST_SETTINGS = {
    "ROBOTSTXT_OBEY": "False", "AUTOTHROTTLE_ENABLED": "False", "DOWNLOAD_DELAY": "0",
    "CONCURRENT_REQUESTS": "64", "CONCURRENT_REQUESTS_PER_DOMAIN": "64",
    "TELNETCONSOLE_ENABLED": "False", "LOG_LEVEL": "INFO", "LOGSTATS_INTERVAL": "0",
}
# The site is thousands of pages of one URL pattern (sN/pN.html): the crawl-trap limits would stop
# medcrawl at MEDCRAWL_MAX_PATTERN_URLS pages, so both arms crawl every page (as with politeness off).
MEDCRAWL_SETTINGS = {"MEDCRAWL_LOGSTATS_INTERVAL": "0", "MEDCRAWL_MAX_PATTERN_URLS": "0",
                     "MEDCRAWL_MAX_PATTERN_CHAIN": "0"}
WIDTHS = (320, 480, 640, 800, 960)


CHUNK = 1000


def site_root() -> Path:
    """The folder the site server serves: image chunks under img/, page sets under s<pages>/."""
    root, _ = common.cached_dir("site", {"widths": WIDTHS, "chunk": CHUNK})
    root.mkdir(parents=True, exist_ok=True)
    return root


def image_names(count: int) -> list[str]:
    """Paths of the first ``count`` site images, generating missing chunks of CHUNK images
    (web-typical sizes 320..960 px wide, 25% PNG; each chunk seeded by its number)."""
    root = site_root()
    for chunk in range(-(-count // CHUNK)):
        folder = root / "img" / f"{chunk:02d}"
        if not (folder / ".complete").exists():
            folder.mkdir(parents=True, exist_ok=True)
            factory = common.ImageFactory(100 + chunk, canvas=(1000, 760))
            rng = np.random.default_rng(100 + chunk)
            for i, fmt in enumerate(common.image_formats(CHUNK, 0.25)):
                width = int(rng.choice(WIDTHS))
                (folder / chunk_name(i, fmt)).write_bytes(factory.encode(width, width * 3 // 4, fmt))
            common.mark_complete(folder)
    formats = common.image_formats(CHUNK, 0.25)
    return [f"img/{i // CHUNK:02d}/{chunk_name(i % CHUNK, formats[i % CHUNK])}" for i in range(count)]


def chunk_name(i: int, fmt: str) -> str:
    return f"{i:04d}.{'png' if fmt == 'PNG' else 'jpg'}"


def build_site(images: int) -> tuple[Path, int]:
    """A site of ceil(images / PER_PAGE) pages in a link tree, PER_PAGE distinct images each."""
    names = image_names(images)
    root, pages = site_root(), -(-images // PER_PAGE)
    folder = root / f"s{pages}"
    if not (folder / ".complete").exists():
        folder.mkdir(exist_ok=True)
        for i in range(pages):
            (folder / f"p{i}.html").write_text(page_html(i, pages, names[i * PER_PAGE:(i + 1) * PER_PAGE]))
        common.mark_complete(folder)
    return root, pages


def page_html(i: int, pages: int, images: list[str]) -> str:
    """One page: text, its images, links to its children in the tree and its neighbours."""
    links = [j for j in (2 * i + 1, 2 * i + 2, i + 1, i - 1, 0) if 0 <= j < pages and j != i]
    text = " ".join(f"Paragraph {k} of page {i} with some ordinary words about a topic." for k in range(12))
    imgs = "\n".join(f'<figure><img src="/{name}" alt="figure {k}"><figcaption>Figure {k}</figcaption></figure>'
                     for k, name in enumerate(images))
    nav = " ".join(f'<a href="p{j}.html">page {j}</a>' for j in dict.fromkeys(links))
    return (f"<!doctype html><html><head><title>Page {i}</title></head><body><h1>Page {i}</h1>"
            f"<nav>{nav}</nav><p>{text}</p>\n{imgs}\n</body></html>\n")


class Server:
    """bench/serve.py over a folder, in its own process on 127.0.0.1, any free port."""

    def __init__(self, root: Path):
        self.proc = subprocess.Popen([sys.executable, "-u", str(SERVE), str(root)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"port (\d+)", line)
        if not match:
            self.close()
            raise RuntimeError(f"the site server did not start: {line!r}")
        self.base = f"http://127.0.0.1:{match[1]}"
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def shown_command(arm: str) -> str:
    """An arm's command line as a person would type it from the repository root."""
    cmd = crawl_command(arm, "http://127.0.0.1:PORT/sPAGES/p0.html", Path("WORK"))
    return " ".join(["python", *cmd[1:]]).replace(str(REPO) + "/", "")


def parse_settings(pairs: list[str] | None) -> dict:
    """``NAME=VALUE`` strings (the --set option) -> a settings dict for both arms."""
    return dict(pair.split("=", 1) for pair in pairs or [])


@dataclass
class CrawlRun:
    """What one crawl did: images stored, crawl and wall seconds, peak memory."""

    arm: str
    images: int
    crawl_s: float          # Scrapy's elapsed_time_seconds (engine start to close)
    wall_s: float           # whole process, start-up (imports, model load) included
    peak_rss_mb: float      # kernel peak RSS of the crawl process (ru_maxrss)
    peak_tree_mb: float     # sampled peak of the summed RSS of the crawl and its children
    cpu_s: float            # user + system CPU seconds of the crawl process
    log_tail: str = ""

    @property
    def rate(self) -> float:
        return self.images / self.crawl_s


def crawl_command(arm: str, start_url: str, work: Path, extra: dict | None = None) -> list[str]:
    """The exact command line of one arm (medcrawl: the product; plain: bench/plain_spider.py)."""
    settings = dict(FAST_SETTINGS, IMAGES_STORE=str(work / "store"), **(extra or {}))
    if arm == "medcrawl":
        settings |= MEDCRAWL_SETTINGS
        cmd = ["-m", "scrapy", "crawl", "site", "-a", f"start_urls={start_url}"]
    else:
        cmd = ["-m", "scrapy", "runspider", str(PLAIN_SPIDER), "-a", f"start_url={start_url}"]
    cmd += ["-O", str(work / feed_name(arm))]
    for name, value in settings.items():
        cmd += ["-s", f"{name}={value}"]
    return [sys.executable, *cmd]


WRAPPER = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
           "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
           "print('MAXRSS_KB', u.ru_maxrss, 'CPU_S', u.ru_utime + u.ru_stime, file=sys.stderr); "
           "sys.exit(rc)")


def run_crawl(arm: str, start_url: str, work: Path, extra: dict | None = None,
              timeout: float = 1800) -> CrawlRun:
    """Run one arm as a subprocess (through a wrapper that reports its peak RSS) and measure it."""
    work.mkdir(parents=True, exist_ok=True)
    log = work / "crawl.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("SCRAPY_SETTINGS_MODULE", None)     # medcrawl: scrapy.cfg in the repo; plain: Scrapy's defaults
    started = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-c", WRAPPER, *crawl_command(arm, start_url, work, extra)],
                                cwd=REPO if arm == "medcrawl" else work, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        sampler = TreeSampler(proc.pid)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            rc = -1
        sampler.stop()
    wall = time.perf_counter() - started
    text = log.read_text(errors="replace")
    if rc != 0:
        raise RuntimeError(f"{arm} crawl failed (exit {rc}); log {log}:\n{text[-3000:]}")
    maxrss_kb, cpu_s = re.findall(r"MAXRSS_KB (\d+) CPU_S ([0-9.]+)", text)[-1]
    return CrawlRun(arm, count_images(arm, work / feed_name(arm)), stat(text, "elapsed_time_seconds"),
                    wall, int(maxrss_kb) / 1024, sampler.peak_kb / 1024, float(cpu_s), text[-2000:])


def stat(log_text: str, name: str) -> float:
    """A number from Scrapy's closing stats dump."""
    match = re.findall(rf"'{re.escape(name)}': ([0-9.]+)", log_text)
    if not match:
        raise RuntimeError(f"no {name} in the crawl log")
    return float(match[-1])


def feed_name(arm: str) -> str:
    return "rows.csv" if arm == "medcrawl" else "items.jsonl"


def count_images(arm: str, feed: Path) -> int:
    """Images an arm actually got: medcrawl rows labelled ok; plain items' stored images."""
    with open(feed, newline="") as fh:
        if arm == "medcrawl":
            return sum(row["status"] == "ok" for row in csv.DictReader(fh))
        return sum(len(json.loads(line)["images"]) for line in fh if line.strip())


class TreeSampler:
    """Sample the summed RSS of a process and all its descendants from /proc, every 0.2 s."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval, self.peak_kb = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_kb = max(self.peak_kb, sum(rss_kb(p) for p in descendants(self.pid)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def descendants(pid: int) -> list[int]:
    """The process's descendants (not itself: that is the wrapper) from /proc children lists."""
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def children(pid: int) -> list[int]:
    pids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
