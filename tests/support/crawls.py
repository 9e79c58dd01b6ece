"""`scrapy crawl site` in a child process, as a user runs it, and the fixture site's finished crawl."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import ServerState
from tests.support.site_fixture import Site

SLOW_TIMEOUT = 2
MAXSIZE = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Crawl:
    """One finished crawl: its outputs and what the server saw."""

    site: Site
    workdir: Path
    returncode: int
    rows: list[dict]
    csv_rows: list[dict]
    csv_header: list[str]
    log: str
    stats: dict[str, int]
    requests: list[tuple[str, str]]

    def html_rows(self) -> list[dict]:
        return [r for r in self.rows if r["source_type"] == "html"]

    def by_url(self, url: str) -> list[dict]:
        return [r for r in self.rows if r["image_url"] == url]


def scrapy_crawl(cwd: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run `scrapy crawl site ARGS` in cwd: the repository root finds scrapy.cfg, others need the env."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if cwd != REPO:
        env["SCRAPY_SETTINGS_MODULE"] = "medcrawl.settings"
    cmd = [sys.executable, "-m", "scrapy", "crawl", "site", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@dataclass
class SiteServer:
    """The fixture site, served on 127.0.0.1 (and as localhost) for the whole module."""

    site: Site
    state: ServerState


def run_crawl(server: SiteServer, workdir: Path, *args: str, cwd: Path | None = None) -> Crawl:
    """Crawl the fixture site with test-speed settings; outputs go to workdir (cwd: workdir)."""
    first_request = len(server.state.requests)
    proc = scrapy_crawl(
        cwd or workdir, *args, "-O", f"{workdir}/rows.jsonl", "-O", f"{workdir}/rows.csv",
        "-s", f"DOWNLOAD_TIMEOUT={SLOW_TIMEOUT}", "-s", "RETRY_TIMES=0", "-s", f"DOWNLOAD_MAXSIZE={MAXSIZE}",
        "-s", "AUTOTHROTTLE_START_DELAY=0.2", "-s", "MEDCRAWL_BATCH_MAX_WAIT=0.5",
        "-s", f"LOG_FILE={workdir}/crawl.log")
    log = (workdir / "crawl.log").read_text() if (workdir / "crawl.log").exists() else ""
    assert proc.returncode == 0, log[-4000:] + proc.stderr[-2000:]
    rows = [json.loads(line) for line in (workdir / "rows.jsonl").read_text().splitlines()]
    with open(workdir / "rows.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        csv_rows, header = list(reader), list(reader.fieldnames or [])
    stats = {k: int(v) for k, v in re.findall(r"'(medcrawl/[^']+)': (\d+)", log)}
    requests = server.state.requests[first_request:]
    return Crawl(server.site, workdir, proc.returncode, rows, csv_rows, header, log, stats, requests)
