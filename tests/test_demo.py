"""The offline demo end to end: package images -> local site -> real crawl -> feeds and dataset."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medcrawl.config import model_location
from medcrawl.items import ROW_FIELDS
from medcrawl.model.classifier import dataset_min_confidence
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


def test_feeds_hold_the_same_rows_with_the_row_columns(demo):
    out, stdout, rows = demo
    assert str(out / "feed.csv") in stdout and "medical" in stdout
    with open(out / "feed.csv", newline="", encoding="utf-8") as fh:
        assert tuple(csv.DictReader(fh).fieldnames) == ROW_FIELDS
    jsonl = [json.loads(line) for line in (out / "feed.jsonl").read_text().splitlines()]
    assert sorted(r["image_url"] for r in jsonl) == sorted(r["image_url"] for r in rows)


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


def test_pdf_images_and_bad_images_get_their_own_rows(demo):
    _, _, rows = demo
    pdf = [r for r in rows if r["source_type"] == "pdf"]
    assert len(pdf) >= 3 and all(r["pdf_page"] and r["status"] == "ok" for r in pdf)
    found = by_file(rows)
    expected = {"missing.png": ("error", "http_404"), "broken.jpg": ("error", "truncated"),
                "tiny.png": ("skipped", "too_small"), "logo.svg": ("skipped", "svg_not_supported")}
    assert {name: (found[name]["status"], found[name]["error"]) for name in expected} == expected


def test_each_page_is_crawled_once(demo):
    _, _, rows = demo
    html = [r for r in rows if r["source_type"] == "html"]
    assert len({r["source_url"] for r in html}) == 3          # home page + --pages 2
    pairs = [(r["image_url"], r["source_url"]) for r in html]
    assert len(pairs) == len(set(pairs))


def test_dataset_holds_confident_images(demo):
    out, _, rows = demo
    dataset = out / "dataset"
    files = [p for p in dataset.rglob("*") if p.is_file() and p.name not in FOLDER_FILES]
    assert (dataset / "manifest.csv").is_file()
    assert files and all(p.parent.name in ("medical", "non-medical", "uncertain") for p in files)
    ok_hashes = {r["sha256"] for r in rows if r["status"] == "ok"}
    assert all(p.stem in ok_hashes for p in files)
    # No MEDCRAWL_DATASET_MIN_CONFIDENCE given: the model's own minimum sorts confident from uncertain.
    minimum = dataset_min_confidence(Path(model_location()[0]))
    confidence = {r["sha256"]: float(r["confidence"]) for r in rows if r["status"] == "ok"}
    assert all((confidence[p.stem] >= minimum) == (p.parent.name != "uncertain") for p in files)
