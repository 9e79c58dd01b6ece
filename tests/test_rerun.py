"""A new harvest over the same sites and store re-uses what it has: by URL and by content.

Run 1 crawls a grid site. The site then grows (two new pages, one of them showing an image
already known, another a known image's bytes under a new URL). Run 2 (a new job, same store,
same dataset) must not download known URLs (``FILES_EXPIRES``), must not store or classify
known content, must still write a row for every occurrence, and may only add to the dataset.
Run 3 with ``FILES_EXPIRES=0`` downloads every URL again but stores and classifies nothing.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest

from medcrawl.publish import FOLDER_FILES
from tests.support.scale_helpers import (build_grid_site, duplicates, picture, read_jsonl, row_keys, run_crawl,
                           stats_from_log, store_files)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]   # slow: crawls


def args(work: Path, feed: str, *extra: str) -> list[str]:
    return ["-s", f"IMAGES_STORE={work}/store", "-o", f"{work}/{feed}",
            "-s", f"MEDCRAWL_DATASET_DIR={work}/dataset", "-s", "MEDCRAWL_DATASET_MIN_CONFIDENCE=0", *extra]


def manifest(work: Path) -> list[dict]:
    with open(work / "dataset" / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def grow(site_root: Path, known: bytes) -> None:
    """Two new pages: new images, a known URL on a new page, known bytes under a new URL."""
    (site_root / "img" / "new-0.png").write_bytes(picture(90_001))
    (site_root / "img" / "new-1.png").write_bytes(picture(90_002))
    (site_root / "img" / "copy.png").write_bytes(known)
    (site_root / "n0.html").write_text("<html><body><img src='img/new-0.png'><img src='img/new-1.png'>"
                                       "<img src='img/0-0.png'></body></html>")
    (site_root / "n1.html").write_text("<html><body><img src='img/copy.png'></body></html>")
    index = site_root / "index.html"
    index.write_text(index.read_text().replace("</body>", "<a href='n0.html'>n0</a><a href='n1.html'>n1</a></body>"))


def test_rerun_skips_known_urls_and_contents_and_only_grows_the_dataset(tmp_path, serve):
    root, work = tmp_path / "site", tmp_path / "work"
    root.mkdir()
    site = build_grid_site(root, pages=6, per_page=5)
    with serve(root) as (base, state):
        first = run_crawl(base, work, *args(work, "run1.jsonl"))
        assert first.returncode == 0, first.stderr[-3000:]
        rows1, manifest1 = read_jsonl(work / "run1.jsonl"), manifest(work)
        store1 = store_files(work / "store")
        stats1 = stats_from_log(first.stderr)
        assert stats1["medcrawl/index/classified"] == stats1["medcrawl/stored"] == len(store1) == 31

        grow(root, site.files["/img/3-3.png"])
        state.requests.clear()
        second = run_crawl(base, work, *args(work, "run2.jsonl"))
        assert second.returncode == 0, second.stderr[-3000:]
        image_requests = sorted(p for p in state.paths() if p.startswith("/img/"))
        state.requests.clear()
        third = run_crawl(base, work, *args(work, "run3.jsonl", "-s", "FILES_EXPIRES=0"))
        assert third.returncode == 0, third.stderr[-3000:]
        third_requests = sorted(p for p in state.paths() if p.startswith("/img/"))

    # Run 2: only new URLs are downloaded; only new content is stored and classified.
    assert image_requests == ["/img/copy.png", "/img/new-0.png", "/img/new-1.png"]
    rows2, stats2 = read_jsonl(work / "run2.jsonl"), stats_from_log(second.stderr)
    new_rows = {(f"{base}/img/new-0.png", f"{base}/n0.html"), (f"{base}/img/new-1.png", f"{base}/n0.html"),
                (f"{base}/img/0-0.png", f"{base}/n0.html"), (f"{base}/img/copy.png", f"{base}/n1.html")}
    assert set(row_keys(rows2)) == set(row_keys(rows1)) | new_rows and not duplicates(row_keys(rows2))
    assert stats2["medcrawl/stored"] == 2 and stats2["medcrawl/index/classified"] == 2
    assert stats2["medcrawl/index/url_uptodate"] == len({r["image_url"] for r in rows1})   # per URL
    assert stats2["medcrawl/index/reused"] == len(rows1) + 2             # ... plus copy.png's content
    assert stats2.get("medcrawl/store/duplicate", 0) == 1               # copy.png: bytes already stored

    # Rows of known images say the same as before, and are complete.
    before = {(r["image_url"], r["source_url"]): r for r in rows1}
    by_key = {(r["image_url"], r["source_url"]): r for r in rows2}
    for key, old in before.items():
        new = by_key[key]
        assert (new["status"], new["error"], new["label"], new["sha256"], new["path"], new["width"]) == \
            (old["status"], "", old["label"], old["sha256"], old["path"], old["width"])
    copy = by_key[(f"{base}/img/copy.png", f"{base}/n1.html")]
    original = by_key[(f"{base}/img/3-3.png", f"{base}/p3.html")]
    assert (copy["sha256"], copy["path"], copy["label"], copy["status"]) == \
        (original["sha256"], original["path"], original["label"], "ok")

    # Store: each content once; the index knows all of it.
    store2 = store_files(work / "store")
    assert store1 < store2 and store2 == {r["path"] for r in rows2} and len(store2) == 33
    with sqlite3.connect(work / "store.index.sqlite") as db:
        assert db.execute("SELECT COUNT(DISTINCT sha256) FROM contents").fetchone()[0] == 33

    # Dataset: only grows; one manifest row per (file, image, page); every file listed and present.
    manifest2 = manifest(work)
    keys = [(m["file"], m["image_url"], m["source_url"]) for m in manifest2]
    assert not duplicates(keys)
    assert manifest2[:len(manifest1)] == manifest1
    assert {(m["image_url"], m["source_url"]) for m in manifest2} == set(row_keys(rows2))
    files = {f for f in store_files(work / "dataset") if Path(f).name not in FOLDER_FILES}
    assert files == {m["file"] for m in manifest2}

    # Run 3, URLs expired: every image URL fetched again, nothing stored or classified.
    assert sorted(set(third_requests)) == sorted({f"/img/{p.name}" for p in (root / "img").iterdir()})
    rows3, stats3 = read_jsonl(work / "run3.jsonl"), stats_from_log(third.stderr)
    assert set(row_keys(rows3)) == set(row_keys(rows2))
    assert stats3.get("medcrawl/stored", 0) == 0 and stats3.get("medcrawl/index/classified", 0) == 0
    assert stats3["medcrawl/index/reused"] == len(rows3)
    assert store_files(work / "store") == store2 and manifest(work) == manifest2
