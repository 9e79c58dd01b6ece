"""End-to-end: `scrapy crawl site` against a generated site on 127.0.0.1 (run once per module)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tests.support.crawls import REPO, Crawl, run_crawl, scrapy_crawl
from medcrawl.items import ROW_FIELDS
from medcrawl.spiders.site import SiteSpider

MIN_CONFIDENCE = 0.75


@pytest.fixture(scope="module")
def crawl(site_server, tmp_path_factory) -> Crawl:
    """The full crawl from the site root, with a dataset."""
    return run_crawl(site_server, tmp_path_factory.mktemp("crawl"),
                     "-a", f"start_urls={site_server.site.base}/", "-s", "MEDCRAWL_DATASET_DIR=dataset",
                     "-s", f"MEDCRAWL_DATASET_MIN_CONFIDENCE={MIN_CONFIDENCE}",
                     "-s", "MEDCRAWL_DATASET_DEDUPE=exact", "-s", "MEDCRAWL_LOGSTATS_INTERVAL=1")


# ---- rows ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_every_page_image_found_with_its_outcome(crawl):
    got = {(r["image_url"], r["source_url"]): r for r in crawl.html_rows()}
    expected = {key: exp for key, exp in crawl.site.rows.items() if exp.source_type == "html"}
    assert set(got) == set(expected), (set(expected) - set(got), set(got) - set(expected))
    for key, exp in expected.items():
        row = got[key]
        assert (row["status"], row["error"]) == (exp.status, exp.reason), (key, row)
        if exp.status == "ok":
            assert row["format"] == exp.fmt, row


@pytest.mark.slow
def test_one_row_per_occurrence(crawl):
    counts = Counter((r["image_url"], r["source_url"]) for r in crawl.rows)
    assert max(counts.values()) == 1
    grace = crawl.site.url("img/grace_hopper.jpg")
    assert sorted(r["source_url"] for r in crawl.by_url(grace)) == sorted(
        [crawl.site.url(""), crawl.site.url("index.html"), crawl.site.url("loop-b.html")])


@pytest.mark.slow
def test_pdf_images_extracted_once_per_xref_with_page(crawl):
    for pdf_url, expected in crawl.site.pdf_images.items():
        rows = [r for r in crawl.rows if r["image_url"].startswith(pdf_url + "#")]
        assert sorted((r["pdf_page"], r["format"]) for r in rows) == sorted(expected), pdf_url
        for row in rows:
            assert re.fullmatch(re.escape(pdf_url) + r"#page=\d+&xref=\d+", row["image_url"])
            assert row["image_url"].startswith(f"{pdf_url}#page={row['pdf_page']}&")
            assert (row["source_type"], row["source_url"], row["status"]) == ("pdf", pdf_url, "ok")


@pytest.mark.slow
def test_unreadable_or_imageless_pdfs_give_one_row_each(crawl):
    for (url, _), exp in crawl.site.rows.items():
        if exp.source_type == "pdf":
            rows = crawl.by_url(url)
            assert len(rows) == 1, url
            assert (rows[0]["source_type"], rows[0]["status"], rows[0]["error"]) == (
                "pdf", exp.status, exp.reason)


@pytest.mark.slow
def test_no_unexpected_rows(crawl):
    pdf_prefixes = tuple(f"{url}#" for url in crawl.site.pdf_images)
    extra = [r for r in crawl.rows if (r["image_url"], r["source_url"]) not in crawl.site.rows
             and not r["image_url"].startswith(pdf_prefixes)]
    assert extra == []
    expected_total = len(crawl.site.rows) + sum(map(len, crawl.site.pdf_images.values()))
    assert len(crawl.rows) == expected_total


@pytest.mark.slow
def test_labels_are_consistent(crawl):
    ok = [r for r in crawl.rows if r["status"] == "ok"]
    assert ok
    for row in ok:
        p, conf = row["medical_probability"], row["confidence"]
        assert row["label"] in ("medical", "non-medical") and row["model"]
        assert 0.0 <= p <= 1.0
        assert conf == pytest.approx(p if row["label"] == "medical" else 1 - p, abs=1e-5)
    for row in crawl.rows:
        if row["status"] != "ok":
            assert row["label"] == "" and row["medical_probability"] is None and row["error"]


@pytest.mark.slow
def test_real_images_get_plausible_labels(crawl):
    """The committed model on real pictures: an MRI slice is medical; a portrait and a logo are not."""
    label = {r["image_url"]: r["label"] for r in crawl.html_rows()}
    assert label[crawl.site.url("img/mri.png")] == "medical"
    assert label[crawl.site.url("img/grace_hopper.jpg")] == "non-medical"
    assert label[crawl.site.url("img/logo2.png")] == "non-medical"


@pytest.mark.slow
def test_sizes_match_the_source_images(crawl):
    for row in crawl.html_rows():
        body = crawl.site.bodies.get(row["image_url"])
        if row["status"] == "ok" and body:
            with Image.open(io.BytesIO(body)) as img:
                assert (row["width"], row["height"]) == img.size, row["image_url"]


# ---- feeds -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_csv_and_jsonl_hold_the_same_rows(crawl):
    assert crawl.csv_header == list(ROW_FIELDS)
    assert all(set(r) == set(ROW_FIELDS) for r in crawl.rows)
    as_text = lambda v: "" if v is None else str(v)  # noqa: E731
    key = lambda r: (r["image_url"], r["source_url"])  # noqa: E731
    jsonl = sorted(({k: as_text(v) for k, v in r.items()} for r in crawl.rows), key=key)
    assert sorted(crawl.csv_rows, key=key) == jsonl
    for row in crawl.csv_rows:
        assert not any(v.startswith(("{", "[", "b'", "ImageItem(")) for v in row.values())


# ---- storage ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_images_stored_once_by_content_as_original_bytes(crawl):
    store = crawl.workdir / "images"
    files = {p.relative_to(store).as_posix(): p for p in store.rglob("*") if p.is_file()}
    stored_rows = [r for r in crawl.rows if r["path"]]
    assert set(files) == {r["path"] for r in stored_rows}
    for row in stored_rows:
        data = files[row["path"]].read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert re.fullmatch(rf"full/{row['sha256'][:2]}/{row['sha256']}\.[a-z0-9]+", row["path"])
        body = crawl.site.bodies.get(row["image_url"])
        if body is not None:
            assert data == body, row["image_url"]
    assert len(files) == len({r["sha256"] for r in stored_rows})


@pytest.mark.slow
def test_same_bytes_under_many_urls_share_one_file(crawl):
    grace = hashlib.sha256(crawl.site.bodies[crawl.site.url("img/grace_hopper.jpg")]).hexdigest()
    rows = [r for r in crawl.rows if r["sha256"] == grace]
    # three page occurrences, a copy under another URL, and the same JPEG inside report.pdf
    assert len(rows) == 5 and {r["source_type"] for r in rows} == {"html", "pdf"}
    assert len({r["path"] for r in rows}) == 1


@pytest.mark.slow
def test_every_ok_image_is_stored(crawl):
    assert all(r["path"] and r["sha256"] for r in crawl.rows if r["status"] == "ok")


# ---- politeness and link following -------------------------------------------------------------

@pytest.mark.slow
def test_robots_offsite_and_unused_candidates_never_fetched(crawl):
    paths = [p for _, p in crawl.requests]
    fetched = {p.split("?")[0] for p in paths}
    for path in crawl.site.never_requested:
        assert path not in fetched, path
    assert not any(p.startswith("/private/") for p in fetched)


@pytest.mark.slow
def test_loops_and_fragments_fetch_each_page_once(crawl):
    counts = Counter(p for host, p in crawl.requests if host.startswith("127.0.0.1"))
    pages = ("/", "/index.html", "/markup.html", "/loop-a.html", "/loop-b.html", "/bad.html", "/pdfs.html")
    for page in pages:
        assert counts[page] == 1, (page, counts[page])
    assert counts["/img/grace_hopper.jpg"] == 1     # three occurrences, one download
    assert not any("#" in p for _, p in crawl.requests)


@pytest.mark.slow
def test_images_on_a_second_host_are_fetched(crawl):
    other_host = crawl.site.other.split("//")[1]
    assert ("/cdn/cdn.jpg" in [p for host, p in crawl.requests if host == other_host])


# ---- stats, log, dataset -----------------------------------------------------------------------

@pytest.mark.slow
def test_stats_count_every_outcome(crawl):
    s, rows = crawl.stats, crawl.rows
    assert s["medcrawl/rows"] == s["medcrawl/images_found"] == len(rows)
    for status in ("ok", "skipped", "error"):
        assert s.get(f"medcrawl/status/{status}", 0) == sum(r["status"] == status for r in rows)
    for row in rows:
        if row["status"] in ("error", "skipped"):
            assert s[f"medcrawl/{row['status']}/{row['error']}"] >= 1
    for label in ("medical", "non-medical"):
        assert s.get(f"medcrawl/label/{label}", 0) == sum(r["label"] == label for r in rows)
    assert s["medcrawl/stored"] == len({r["sha256"] for r in rows if r["path"]})
    assert s["medcrawl/pdfs"] == len(crawl.site.pdf_images) + 3     # + encrypted, broken, text-only


@pytest.mark.slow
def test_progress_and_closing_log_lines(crawl):
    assert re.search(r"\[medcrawl\.extensions\] INFO: Harvest: \d+ images found, \d+ rows done .* rows/min",
                     crawl.log)
    line = next(line for line in crawl.log.splitlines() if "Harvest finished (finished)" in line)
    assert f"{len(crawl.rows)} images found, {len(crawl.rows)} rows done" in line
    assert "Traceback" not in crawl.log


@pytest.mark.slow
def test_dataset_holds_unique_images_unconfident_ones_in_uncertain(crawl):
    root = crawl.workdir / "dataset"
    chosen = [r for r in crawl.rows if r["status"] == "ok"]
    files = {p.relative_to(root).as_posix() for p in root.rglob("*")
             if p.is_file() and p.suffix not in (".csv", ".jsonl", ".md")}
    assert files == {f"{r['label'] if r['confidence'] >= MIN_CONFIDENCE else 'uncertain'}/"
                     f"{r['sha256']}.{Path(r['path']).suffix[1:]}" for r in chosen}
    for name in files:
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == Path(name).stem
    with open(root / "manifest.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        manifest = list(reader)
    assert reader.fieldnames == ["file", "split", *ROW_FIELDS]
    assert chosen and len(manifest) == len(chosen)
    assert all(m["file"] in files and m["status"] == "ok" for m in manifest)


# ---- start-up failure --------------------------------------------------------------------------

@pytest.mark.slow
def test_missing_model_stops_the_crawl_at_start(tmp_path):
    proc = scrapy_crawl(tmp_path, "-a", "start_urls=http://127.0.0.1:9/", "-O", "rows.csv",
                        "-s", f"MEDCRAWL_MODEL={tmp_path / 'no-such-model'}", timeout=120)
    assert proc.returncode != 0
    assert "no model at" in proc.stderr and "model.json is missing" in proc.stderr
    out = tmp_path / "rows.csv"
    assert not out.exists() or out.read_text().strip() == ""


# ---- spider arguments --------------------------------------------------------------------------

@pytest.mark.slow
def test_seed_file_and_max_depth_limit_link_following(site_server, tmp_path):
    """Also the plain `scrapy crawl site ...` from the repository root (scrapy.cfg)."""
    site = site_server.site
    (tmp_path / "seeds.txt").write_text(f"# seeds\n{site.url('loop-a.html')}\n\n")
    shallow = run_crawl(site_server, tmp_path, "-a", f"start_urls_file={tmp_path}/seeds.txt",
                        "-a", "max_depth=1", "-a", "allowed_domains=127.0.0.1",
                        "-s", f"IMAGES_STORE={tmp_path}/store", cwd=REPO)
    pages = {p for _, p in shallow.requests if p.endswith(".html")}
    assert pages == {"/loop-a.html", "/loop-b.html", "/index.html"}    # depth 0 and 1 only
    grace, copy = site.url("img/grace_hopper.jpg"), site.url("img/copy-of-grace.jpg")
    assert sorted((r["image_url"], r["source_url"]) for r in shallow.rows) == sorted([
        (grace, site.url("index.html")), (grace, site.url("loop-b.html")), (copy, site.url("loop-b.html"))])
    assert all(r["status"] == "ok" for r in shallow.rows)
    assert all((tmp_path / "store" / r["path"]).is_file() for r in shallow.rows)


def test_spider_arguments():
    spider = SiteSpider(start_urls="http://a.test/x, http://b.test:8080/y,http://a.test/x", follow="false")
    assert spider.start_urls == ["http://a.test/x", "http://b.test:8080/y"]
    assert spider.allowed_domains == ["a.test", "b.test"] and spider.max_depth == 0
    assert SiteSpider(start_urls="https://www.c.test/").allowed_domains == ["c.test"]
    spider = SiteSpider(start_urls="http://a.test/", allowed_domains="a.test, cdn.a.test", max_depth="3")
    assert spider.allowed_domains == ["a.test", "cdn.a.test"] and spider.max_depth == 3
    assert SiteSpider(start_urls="http://a.test/").max_depth is None
    with pytest.raises(ValueError, match="no start URLs"):
        SiteSpider()
