"""The offline demo end to end: package images -> local site -> real crawl -> feeds and dataset."""

import csv
import json
import re
import subprocess
import sys

import pytest

from medcrawl.config import LoadedModel
from medcrawl.items import ROW_FIELDS
from medcrawl.oneoff.demo import DemoSite, SiteImage, summarise
from medcrawl.publish import FOLDER_FILES


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "medcrawl.oneoff.demo", "--out", str(out), "--pages", "2"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out / "feed.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return out, proc.stdout, rows


def by_file(rows):
    return {r["image_url"].rsplit("/", 1)[-1]: r for r in rows if r["source_type"] == "html"}


@pytest.mark.slow
def test_feeds_hold_the_same_rows_with_the_row_columns(demo):
    out, stdout, rows = demo
    assert str(out / "feed.csv") in stdout and "medical" in stdout
    with open(out / "feed.csv", newline="", encoding="utf-8") as fh:
        assert tuple(csv.DictReader(fh).fieldnames) == ROW_FIELDS
    jsonl = [json.loads(line) for line in (out / "feed.jsonl").read_text().splitlines()]
    assert sorted(r["image_url"] for r in jsonl) == sorted(r["image_url"] for r in rows)


@pytest.mark.slow
def test_every_embedding_style_is_found_and_labelled(demo):
    out, _, rows = demo
    pages = " ".join(p.read_text() for p in (out / "site").glob("*.html"))
    assert all(s in pages for s in ("srcset=", "data-src=", "<picture>", "background-image:url("))
    placed = set(re.findall(r"img/(\d{3}-[a-z0-9-]+?\.(?:png|jpg))", pages)) - \
        set(re.findall(r"img/(\d{3}-[a-z0-9-]+-small\.(?:png|jpg))", pages))
    found = by_file(rows)
    assert placed and placed <= set(found), f"not crawled: {sorted(placed - set(found))}"
    assert all(found[name]["status"] == "ok" and found[name]["label"] for name in placed)
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["sha256"] and r["model"] and r["width"] for r in ok)
    assert {r["label"] for r in ok} == {"medical", "non-medical"}


@pytest.mark.slow
def test_pdf_images_and_bad_images_get_their_own_rows(demo):
    _, _, rows = demo
    pdf = [r for r in rows if r["source_type"] == "pdf"]
    assert len(pdf) >= 3 and all(r["pdf_page"] and r["status"] == "ok" for r in pdf)
    found = by_file(rows)
    expected = {"missing.png": ("error", "http_404"), "broken.jpg": ("error", "truncated"),
                "tiny.png": ("skipped", "too_small"), "logo.svg": ("skipped", "svg_not_supported")}
    assert {name: (found[name]["status"], found[name]["error"]) for name in expected} == expected


@pytest.mark.slow
def test_each_page_is_crawled_once(demo):
    _, _, rows = demo
    html = [r for r in rows if r["source_type"] == "html"]
    assert len({r["source_url"] for r in html}) == 3          # home page + --pages 2
    pairs = [(r["image_url"], r["source_url"]) for r in html]
    assert len(pairs) == len(set(pairs))


@pytest.mark.slow
def test_dataset_holds_confident_images(demo):
    out, _, rows = demo
    dataset = out / "dataset"
    files = [p for p in dataset.rglob("*") if p.is_file() and p.name not in FOLDER_FILES]
    assert (dataset / "manifest.csv").is_file()
    assert files and all(p.parent.name in ("medical", "non-medical", "uncertain") for p in files)
    ok_hashes = {r["sha256"] for r in rows if r["status"] == "ok"}
    assert all(p.stem in ok_hashes for p in files)
    # No MEDCRAWL_DATASET_MIN_CONFIDENCE given: the model's own minimum sorts confident from uncertain.
    minimum = LoadedModel.load().dataset_min_confidence
    confidence = {r["sha256"]: float(r["confidence"]) for r in rows if r["status"] == "ok"}
    assert all((confidence[p.stem] >= minimum) == (p.parent.name != "uncertain") for p in files)


@pytest.mark.slow
def test_the_demo_writes_its_report_and_prints_where(demo):
    out, stdout, rows = demo
    report = out / "report.html"
    assert f"report:  {report}" in stdout and report.is_file()
    assert len(list((out / "report_files").iterdir())) >= sum(r["status"] == "ok" for r in rows) // 2


def test_the_summary_names_the_images_that_disagree_with_their_package(tmp_path):
    site = DemoSite(tmp_path / "site", images=[SiteImage("img/001-xray.png", "medical", "xray", "a" * 64),
                                               SiteImage("img/002-photo.jpg", "non-medical", "photo", "b" * 64)],
                    pdf_images=[SiteImage("img/003-ct.png", "medical", "ct", "c" * 64)])
    base = "http://127.0.0.1:8000"
    rows = [{"image_url": f"{base}/img/001-xray.png", "source_url": f"{base}/", "source_type": "html",
             "pdf_page": "", "sha256": "a" * 64, "label": "non-medical", "confidence": "0.61", "status": "ok",
             "error": ""},
            {"image_url": f"{base}/img/002-photo.jpg", "source_url": f"{base}/", "source_type": "html",
             "pdf_page": "", "sha256": "b" * 64, "label": "non-medical", "confidence": "0.98", "status": "ok",
             "error": ""},
            {"image_url": f"{base}/report.pdf#xref=7", "source_url": f"{base}/report.pdf", "source_type": "pdf",
             "pdf_page": "2", "sha256": "c" * 64, "label": "non-medical", "confidence": "0.7", "status": "ok",
             "error": ""}]
    with open(tmp_path / "feed.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = summarise(tmp_path, site).lines()
    at = lines.index("agreement with the package labels: 1/3 images, except:")
    assert lines[at + 1:at + 3] == ["  001-xray.png: package medical, model non-medical (0.61)",
                                    "  report.pdf p.2: package medical, model non-medical (0.70)"]
