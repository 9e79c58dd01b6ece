"""Two crawl workers share one Redis frontier (scrapy-redis) and one content index.

Every page must be fetched exactly once in total (the HTTP server's log), the union of the
workers' rows must equal a single-process crawl's, and no content may be stored or
classified twice. The workers stop on their own once the shared frontier stays empty.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.support.scale_helpers import (build_grid_site, duplicates, read_jsonl, row_keys, run_crawl, start_crawl,
                           stats_from_log, store_files)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240),   # slow: Redis and crawls
              pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="Debian package redis-server is not installed")]


def worker_args(work: Path, redis_url: str, n: int) -> list[str]:
    return ["-s", f"MEDCRAWL_REDIS_URL={redis_url}", "-s", "MAX_IDLE_TIME_BEFORE_CLOSE=6",
            "-s", f"IMAGES_STORE={work}/store", "-o", f"{work}/worker{n}.jsonl", "-s", "DOWNLOAD_DELAY=0.06",
            "-s", "CONCURRENT_REQUESTS=2"]         # hold few requests, so the other worker gets a share


def test_two_workers_share_one_frontier_and_one_index(redis_url, tmp_path, serve):
    url, client = redis_url
    root, work, single = tmp_path / "site", tmp_path / "workers", tmp_path / "single"
    root.mkdir()
    site = build_grid_site(root, pages=20, per_page=6)
    with serve(root) as (base, state):
        reference = run_crawl(base, single, "-s", f"IMAGES_STORE={single}/store", "-o", f"{single}/rows.jsonl")
        assert reference.returncode == 0, reference.stderr[-3000:]
        state.requests.clear()
        workers = [start_crawl(base, work, *worker_args(work, url, n), log_name=f"worker{n}.log")
                   for n in (1, 2)]
        for proc in workers:
            assert proc.wait(timeout=180) == 0
        requested = Counter(state.paths())

    logs = [(work / f"worker{n}.log").read_text() for n in (1, 2)]
    stats = [stats_from_log(log) for log in logs]
    rows = [read_jsonl(work / f"worker{n}.jsonl") for n in (1, 2)]
    union = rows[0] + rows[1]

    # Pages: each fetched exactly once, by one worker or the other; both workers took part.
    assert {p: requested[p] for p in site.page_paths} == {p: 1 for p in site.page_paths}
    assert all(s.get("medcrawl/pages", 0) >= 1 for s in stats), [s.get("medcrawl/pages") for s in stats]
    assert sum(s["medcrawl/pages"] for s in stats) == len(site.page_paths)
    assert all("Spider closed (finished)" in log for log in logs)

    # Rows: the union equals the single-process crawl, none written twice.
    single_rows = read_jsonl(single / "rows.jsonl")
    assert not duplicates(row_keys(union))
    assert set(row_keys(union)) == set(row_keys(single_rows)) == site.expected_rows(base)
    by_key = {(r["image_url"], r["source_url"]): r for r in single_rows}
    assert all(by_key[(r["image_url"], r["source_url"])]["sha256"] == r["sha256"] for r in union)

    # Content: stored once and classified once across both workers; the index is in Redis.
    contents = {r["sha256"] for r in union}
    assert store_files(work / "store") == {r["path"] for r in union}
    assert sum(s.get("medcrawl/stored", 0) for s in stats) == len(contents)
    assert sum(s.get("medcrawl/index/classified", 0) for s in stats) == len(contents)
    assert sum(1 for _ in client.scan_iter("medcrawl:index:c:*")) == len(contents)
    assert client.zcard("medcrawl:site:requests") == 0                      # frontier drained
    assert client.scard("medcrawl:site:dupefilter") == len(site.page_paths)


def test_no_worker_fetches_what_robots_txt_forbids(redis_url, tmp_path, serve):
    """Requests a worker takes while its robots.txt is still loading are checked against it too.

    Both workers start from the same seeds, several of them forbidden; robots.txt answers slowly,
    so each worker holds a few requests waiting for it (Scrapy used to check only the first).
    """
    from tests.support.servers import ServerState

    url, _ = redis_url
    root, work = tmp_path / "site", tmp_path / "workers"
    (root / "private").mkdir(parents=True)
    site = build_grid_site(root, pages=6, per_page=2)
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    private = [f"/private/{n}.html" for n in range(10)]
    for path in private:
        (root / path.lstrip("/")).write_text("<html><body><img src='/img/logo.png'></body></html>")
    state = ServerState(slow={"/robots.txt"}, slow_seconds=1.0)
    with serve(root, state) as (base, state):
        seeds = ",".join([f"{base}/", *(base + p for p in private)])
        args = ["-a", f"start_urls={seeds}", "-s", "CONCURRENT_REQUESTS=8"]
        workers = [start_crawl(base, work, *worker_args(work, url, n), *args, log_name=f"worker{n}.log")
                   for n in (1, 2)]
        for proc in workers:
            assert proc.wait(timeout=180) == 0
    requested = state.paths()
    assert not [p for p in requested if p.startswith("/private/")]
    assert set(site.page_paths) <= set(requested)                      # the allowed part was crawled
    stats = [stats_from_log((work / f"worker{n}.log").read_text()) for n in (1, 2)]
    assert sum(s.get("robotstxt/forbidden", 0) for s in stats) == len(private)
