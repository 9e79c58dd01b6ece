"""Kill a crawl (SIGKILL, also a clean SIGINT pause) and resume it with the same JOBDIR.

The site: 30 pages x 8 images plus a shared logo, served by a ThreadingHTTPServer on
127.0.0.1 with a download delay so a crawl takes about 10 s. The interrupted crawl must end
with the same rows as an uninterrupted one: the same (image_url, source_url) set, no
duplicate line in the appended feed, every stored file once, a consistent dataset.
"""

from __future__ import annotations

import csv
import hashlib
import os
import signal
from pathlib import Path

import pytest

from medcrawl.publish import FOLDER_FILES
from tests.support.scale_helpers import (build_grid_site, duplicates, kill_hard, read_jsonl, row_keys, run_crawl,
                           start_crawl, stats_from_log, store_files, wait_for)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]   # slow: crawls


def job_args(work: Path) -> list[str]:
    return ["-s", f"IMAGES_STORE={work}/store", "-o", f"{work}/rows.jsonl", "-s", f"JOBDIR={work}/job",
            "-s", "DOWNLOAD_DELAY=0.04", "-s", f"MEDCRAWL_DATASET_DIR={work}/dataset",
            "-s", "MEDCRAWL_DATASET_MIN_CONFIDENCE=0"]


def feed_lines(work: Path) -> int:
    path = work / "rows.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture(scope="module")
def grid(tmp_path_factory, serve):
    root = tmp_path_factory.mktemp("grid")
    site = build_grid_site(root, pages=30, per_page=8)
    with serve(root) as (base, state):
        yield site, base, state


@pytest.fixture(scope="module")
def reference(grid, tmp_path_factory):
    """The same crawl, never interrupted."""
    site, base, _ = grid
    work = tmp_path_factory.mktemp("reference")
    proc = run_crawl(base, work, *job_args(work))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_jsonl(work / "rows.jsonl")


def test_reference_crawl_finds_every_image(grid, reference):
    site, base, _ = grid
    assert set(row_keys(reference)) == site.expected_rows(base)
    assert not duplicates(row_keys(reference))


def test_killed_paused_and_killed_again_crawl_resumes_without_loss_or_duplicates(grid, reference, tmp_path):
    site, base, _ = grid
    work, expected = tmp_path, len(reference)
    # 1: SIGKILL after a fifth of the rows; leave a torn last line as a kill mid-write would.
    proc = start_crawl(base, work, *job_args(work), log_name="run1.log")
    wait_for(lambda: feed_lines(work) >= expected // 5, 120, what="a fifth of the rows")
    kill_hard(proc)
    with open(work / "rows.jsonl", "ab") as fh:
        fh.write(b'{"image_url": "http://127.0.0.1/torn')
    # 2: a clean pause (one SIGINT: Scrapy finishes what is in flight and saves JOBDIR).
    proc = start_crawl(base, work, *job_args(work), log_name="run2.log")
    wait_for(lambda: feed_lines(work) >= expected // 2, 120, what="half of the rows")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    # 3: SIGKILL again, then 4: run to the end.
    proc = start_crawl(base, work, *job_args(work), log_name="run3.log")
    wait_for(lambda: feed_lines(work) >= expected * 3 // 4, 120, what="three quarters of the rows")
    kill_hard(proc)
    final = run_crawl(base, work, *job_args(work))
    assert final.returncode == 0, final.stderr[-3000:]

    logs = {n: (work / f"run{n}.log").read_text() for n in (2, 3)}
    assert "Cut a partial last line" in logs[2] and "Resume after an unclean stop" in logs[2]
    assert "Closing spider (shutdown)" in logs[2]
    assert "not closed cleanly" not in logs[3]                    # the pause left a clean JOBDIR
    assert "Resume after an unclean stop" in final.stderr

    rows = read_jsonl(work / "rows.jsonl")          # every line parses: no torn line left
    assert not duplicates(row_keys(rows))
    assert set(row_keys(rows)) == set(row_keys(reference)) == site.expected_rows(base)
    ref = {(r["image_url"], r["source_url"]): r for r in reference}
    for row in rows:
        same = ref[(row["image_url"], row["source_url"])]
        assert (row["sha256"], row["path"], row["label"], row["status"]) == \
            (same["sha256"], same["path"], same["label"], same["status"])
    stats = stats_from_log(final.stderr)
    assert stats["medcrawl/resume/requeued"] >= 1


def test_store_and_dataset_are_consistent_after_resume(grid, reference, tmp_path):
    """Run the kill/resume sequence once more at other moments; check store and dataset files."""
    site, base, _ = grid
    work = tmp_path
    for fraction in (0.35, 0.7):
        proc = start_crawl(base, work, *job_args(work))
        wait_for(lambda: feed_lines(work) >= len(reference) * fraction, 120, what="rows")
        kill_hard(proc)
    final = run_crawl(base, work, *job_args(work))
    assert final.returncode == 0, final.stderr[-3000:]
    rows = read_jsonl(work / "rows.jsonl")
    assert set(row_keys(rows)) == site.expected_rows(base) and not duplicates(row_keys(rows))

    stored = store_files(work / "store")
    assert stored == {r["path"] for r in rows}                   # every stored file once, none missing
    for path in stored:
        digest = hashlib.sha256((work / "store" / path).read_bytes()).hexdigest()
        assert Path(path).stem == digest                         # complete files, content-addressed

    with open(work / "dataset" / "manifest.csv", newline="", encoding="utf-8") as fh:
        text = fh.read()
    assert text.endswith("\n") and text.count("file,split,image_url,") == 1
    manifest = list(csv.DictReader(text.splitlines()))
    keys = [(m["file"], m["image_url"], m["source_url"]) for m in manifest]
    assert not duplicates(keys)
    assert {(m["image_url"], m["source_url"]) for m in manifest} == {
        (r["image_url"], r["source_url"]) for r in rows if r["status"] == "ok"}
    files = {f for f in store_files(work / "dataset") if Path(f).name not in FOLDER_FILES}
    assert files == {m["file"] for m in manifest}
    assert not [p for p in os.listdir(work / "dataset" / "medical") if p.startswith(".")]
