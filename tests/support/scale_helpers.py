"""Shared by the harvest-at-scale tests: a generated grid site, crawl processes, feed readers."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


@dataclass
class GridSite:
    """``pages`` pages of ``per_page`` distinct images; each page also shows the shared logo."""

    root: Path
    pages: int
    per_page: int
    files: dict[str, bytes] = field(default_factory=dict)     # path -> bytes

    @property
    def page_paths(self) -> list[str]:
        return ["/", "/index.html"] + [f"/p{i}.html" for i in range(self.pages)]

    def expected_rows(self, base: str) -> set[tuple[str, str]]:
        """(image_url, source_url) of every image occurrence a full crawl from ``base/`` finds."""
        rows = set()
        for i in range(self.pages):
            page = f"{base}/p{i}.html"
            rows |= {(f"{base}/img/{i}-{j}.png", page) for j in range(self.per_page)}
            rows.add((f"{base}/img/logo.png", page))
        return rows


def picture(seed: int, size: int = 72) -> bytes:
    """A distinct, photo-like PNG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    arr = np.stack([x * rng.uniform(1, 3), y * rng.uniform(1, 3), (x + y) * rng.uniform(0.5, 2)], -1)
    arr = (arr + rng.normal(0, 20, (size, size, 3)) + rng.integers(0, 120, 3)).clip(0, 255)
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


def build_grid_site(root: Path, pages: int = 30, per_page: int = 8, extra_body: str = "") -> GridSite:
    """Index -> p0..pN (a chain, and all linked from the index); every page: its images + the logo."""
    site = GridSite(root, pages, per_page)
    (root / "img").mkdir(parents=True, exist_ok=True)
    logo = picture(10_000)
    (root / "img" / "logo.png").write_bytes(logo)
    links = "".join(f"<a href='p{i}.html'>page {i}</a> " for i in range(pages))
    (root / "index.html").write_text(f"<!doctype html><html><body>{links}{extra_body}</body></html>")
    (root / "robots.txt").write_text("User-agent: *\nDisallow:\n")
    for i in range(pages):
        imgs = ""
        for j in range(per_page):
            data = picture(i * 100 + j)
            (root / "img" / f"{i}-{j}.png").write_bytes(data)
            site.files[f"/img/{i}-{j}.png"] = data
            imgs += f"<img src='img/{i}-{j}.png'>"
        nxt = f"<a href='p{(i + 1) % pages}.html'>next</a>"
        (root / f"p{i}.html").write_text(
            f"<!doctype html><html><body><h1>Page {i}</h1>{imgs}<img src='img/logo.png'>{nxt}"
            f"<a href='index.html'>home</a></body></html>")
    site.files["/img/logo.png"] = logo
    return site


def crawl_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


def crawl_command(base: str, *args: str) -> list[str]:
    """`scrapy crawl site` over a local site: polite defaults relaxed for 127.0.0.1."""
    return [sys.executable, "-m", "scrapy", "crawl", "site", "-a", f"start_urls={base}/",
            "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "MEDCRAWL_LOGSTATS_INTERVAL=0",
            "-s", "MEDCRAWL_BATCH_MAX_WAIT=0.3", "-s", "TELNETCONSOLE_ENABLED=False", *args]


def run_crawl(base: str, workdir: Path, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    # Run through a shell that forks the crawl: Linux carries ru_maxrss across fork + exec, so a
    # crawl started straight from this (large) test process would report its size as memusage/max.
    command = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *crawl_command(base, *args)]
    with subprocess.Popen(command, cwd=REPO, env=crawl_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as popen:
        try:
            stdout, stderr = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            raise
    proc = subprocess.CompletedProcess(command, popen.returncode, stdout, stderr)
    (workdir / "crawl.log").write_text(proc.stderr)
    return proc


def start_crawl(base: str, workdir: Path, *args: str, log_name: str = "crawl.log") -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / log_name, "w")
    return subprocess.Popen(crawl_command(base, *args), cwd=REPO, env=crawl_env(), stdout=log,
                            stderr=subprocess.STDOUT, text=True)


def kill_hard(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines feed; fails on a malformed line."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def row_keys(rows: list[dict]) -> list[tuple[str, str]]:
    return [(r["image_url"], r["source_url"]) for r in rows]


def duplicates(keys: list) -> dict:
    return {k: n for k, n in Counter(keys).items() if n > 1}


def stats_from_log(log: str) -> dict[str, int]:
    """The integer stats of the 'Dumping Scrapy stats' block."""
    import re

    block = log.rsplit("Dumping Scrapy stats:", 1)[-1]
    return {k: int(v) for k, v in re.findall(r"'([^']+)': (\d+)[,}]", block)}


def store_files(store: Path) -> set[str]:
    return {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
