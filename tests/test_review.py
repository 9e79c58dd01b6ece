"""Report, Review tab and corrections end to end, on a real crawl of a fixture site.

The report opens in headless Chromium from disk (every thumbnail loads; screenshot in
test-artifacts/), the Review tab of the real `medcrawl ui` is driven by Playwright (filter, three
corrections, reload), a second crawl into the same dataset keeps the corrections, two reviewers
at once lose nothing, and training reads the reviewed dataset.
Needs Debian's chromium (/usr/bin/chromium); Playwright drives it, no browser download.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.support.oneoff_assets import make_pdf, mri_png, photo_jpeg, png
from tests.support.site_fixture import encode, photo
from tests.support.crawls import scrapy_crawl
from tests.support.browser import ARTIFACTS, CHROMIUM, running_ui

pytestmark = [pytest.mark.slow,   # crawls and Chromium
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="needs Debian's chromium: apt-get install -y chromium")]
MIN_CONFIDENCE = 0.99           # the fixture images: 0.95-0.9999 with the committed model
LABEL_FOLDERS = ("medical", "non-medical", "uncertain", "unusable")


def site_images() -> dict[str, bytes]:
    """Distinct real and generated images: MRI slices, a portrait, photo-like scenes."""
    mri = Image.open(io.BytesIO(mri_png()))
    portrait = Image.open(io.BytesIO(photo_jpeg()))
    images = {"mri.png": mri_png(), "portrait.jpg": photo_jpeg(),
              "mri-flip.png": png(mri.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
              "mri-crop.png": png(mri.crop((20, 20, 236, 236))),
              "portrait-crop.jpg": encode(portrait.crop((0, 0, 400, 400)), "JPEG")}
    images.update({f"scene{i}.jpg": encode(photo(320, 240, i), "JPEG") for i in range(5)})
    return images


def build_site(root: Path) -> dict[str, bytes]:
    """Two pages and a PDF; one missing image (http_404) and one too small to use."""
    images = site_images()
    for name, data in images.items():
        (root / name).write_bytes(data)
    (root / "tiny.png").write_bytes(png(Image.new("RGB", (16, 16), "red")))
    (root / "paper.pdf").write_bytes(make_pdf([mri_png(), photo_jpeg()]))
    names = list(images)
    tags = lambda files: "".join(f'<img src="/{n}">' for n in files)  # noqa: E731
    (root / "index.html").write_text(f'<html><body>{tags(names[:5])}<img src="/missing.png">'
                                     f'<a href="/page2.html">more</a><a href="/paper.pdf">paper</a></body></html>')
    (root / "page2.html").write_text(f'<html><body>{tags(names[5:])}<img src="/tiny.png"></body></html>')
    return images


@dataclass
class Harvest:
    """The work folder of the first crawl: feed, store, dataset and the crawl-end report."""

    work: Path
    base: str
    rows: list[dict]

    @property
    def dataset(self) -> Path:
        return self.work / "dataset"


def crawl(work: Path, base: str, feed: str) -> list[dict]:
    proc = scrapy_crawl(work, "-a", f"start_urls={base}/", "-O", feed, "-s", "IMAGES_STORE=images",
                        "-s", "MEDCRAWL_DATASET_DIR=dataset", "-s", f"MEDCRAWL_DATASET_MIN_CONFIDENCE={MIN_CONFIDENCE}",
                        "-s", "MEDCRAWL_REPORT=crawl-report.html", "-s", "RETRY_TIMES=0",
                        "-s", "MEDCRAWL_DATASET_DEDUPE=exact",      # every picture here is its own image
                        "-s", "AUTOTHROTTLE_START_DELAY=0.1", "-s", "MEDCRAWL_BATCH_MAX_WAIT=0.3",
                        "-s", f"LOG_FILE={work}/{feed}.log")
    log = (work / f"{feed}.log").read_text()
    assert proc.returncode == 0 and " ERROR: " not in log, log[-4000:] + proc.stderr[-2000:]
    return [json.loads(line) for line in (work / feed).read_text().splitlines()]


@pytest.fixture(scope="module")
def site(serve, tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    build_site(root)
    with serve(root) as (base, _):
        yield base


@pytest.fixture(scope="module")
def harvest(site, tmp_path_factory) -> Harvest:
    work = tmp_path_factory.mktemp("harvest")
    return Harvest(work, site, crawl(work, site, "run1.jsonl"))


def manifest(dataset: Path) -> list[dict]:
    with open(dataset / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def dataset_files(dataset: Path) -> dict[str, str]:
    """sha256 -> file (relative) of every image in the dataset's folders."""
    return {p.stem: p.relative_to(dataset).as_posix() for p in dataset.rglob("*")
            if p.is_file() and p.parts[len(dataset.parts)] in LABEL_FOLDERS}


# ---- dataset: uncertain/ ---------------------------------------------------------------------

def test_unconfident_images_go_to_uncertain_and_the_manifest(harvest):
    ok = {r["sha256"]: r for r in harvest.rows if r["status"] == "ok"}
    expected = {sha: f"{r['label'] if r['confidence'] >= MIN_CONFIDENCE else 'uncertain'}/{Path(r['path']).name}"
                for sha, r in ok.items()}
    assert dataset_files(harvest.dataset) == expected
    assert {m["file"] for m in manifest(harvest.dataset)} == set(expected.values())
    assert any(f.startswith("uncertain/") for f in expected.values()), "no image below the minimum"
    assert any(not f.startswith("uncertain/") for f in expected.values())


# ---- the report ------------------------------------------------------------------------------

def medcrawl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("medcrawl")
    return subprocess.run([str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def open_report(browser, path: Path, shot: str):
    """The page from disk: (image count, images that did not load, page text)."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate("[...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth])")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    text = page.inner_text("body")
    page.close()
    return images, text


def test_report_of_feed_and_store_opens_from_disk(harvest, browser):
    proc = medcrawl("report", "run1.jsonl", "--store", "images", "-o", "out/report.html", cwd=harvest.work)
    assert proc.returncode == 0, proc.stderr
    images, text = open_report(browser, harvest.work / "out" / "report.html", "report.png")
    distinct = {r["sha256"] for r in harvest.rows if r["status"] == "ok"}
    assert all(width for _, width in images), images          # an image may stand in several grids
    assert {Path(src).stem for src, _ in images} == distinct
    assert "http_404" in text and "too_small" in text and "PDF p.1" in text
    assert f"{len(harvest.rows)} rows" in text


def test_crawl_end_report_matches_the_feed(harvest, browser):
    images, text = open_report(browser, harvest.work / "crawl-report.html", "crawl-report.png")
    assert f"{len(harvest.rows)} rows" in text
    assert images and all(width for _, width in images), images


def test_report_refuses_a_missing_harvest(tmp_path):
    proc = medcrawl("report", "nothing.jsonl", "-o", "r.html", cwd=tmp_path)
    assert proc.returncode == 1 and "nothing.jsonl does not exist" in proc.stderr
    assert not (tmp_path / "r.html").exists()


# ---- the Review tab --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def review_url(harvest):
    with running_ui("--review", "dataset", log_path=harvest.work / "ui.log", cwd=harvest.work) as url:
        yield url


def open_review(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.goto(url)
    page.get_by_role("tab", name="Review").click()
    page.locator("#review-progress").get_by_text("Reviewed").wait_for(timeout=60_000)
    return page


def choose(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=value, exact=True).click()


def captions(page) -> list[str]:
    return [t.strip() for t in page.locator("#review-gallery .caption-label").all_inner_texts()]


def wait_progress(page, text: str) -> None:
    page.locator("#review-progress").get_by_text(text).wait_for(timeout=30_000)


@pytest.fixture(scope="module")
def reviewed(harvest, review_url, browser) -> dict[str, tuple[str, str]]:
    """Three corrections made in the browser: sha256 -> (new label, new modality)."""
    page = open_review(browser, review_url)
    total = len({r["sha256"] for r in harvest.rows if r["status"] == "ok"})
    wait_progress(page, f"Reviewed 0 / {total}")
    choose(page, "review-label", "medical")
    shown = order(harvest, lambda row: row["label"] == "medical")
    wait_progress(page, f"{len(shown)} match")
    assert len(captions(page)) == len(shown) and all("medical" in c for c in captions(page))
    page.locator("#review-gallery .thumbnail-item").nth(0).click()
    page.locator("#review-selected").get_by_text(shown[0]).wait_for()
    page.keyboard.press("n")                                     # key: non-medical
    wait_progress(page, "Reviewed 1 /")
    page.locator("#review-selected").get_by_text(shown[1]).wait_for()   # the next one is selected
    page.locator("#review-unusable").click()                    # button: not a usable image
    wait_progress(page, "Reviewed 2 /")
    choose(page, "review-label", "uncertain")
    page.locator("#review-gallery .thumbnail-item").first.wait_for()
    target = order(harvest, lambda row: row["file"].startswith("uncertain/"))[0]
    choose(page, "review-modality", "ct")
    page.locator("#review-gallery .thumbnail-item").nth(0).click()
    page.locator("#review-selected").get_by_text(target).wait_for()
    page.keyboard.press("m")                                     # medical, modality ct
    wait_progress(page, "Reviewed 3 /")
    choose(page, "review-label", "any")
    page.locator("#review-high input[type=number]").fill(str(MIN_CONFIDENCE))   # a confidence range
    page.locator("#review-high input[type=number]").press("Enter")
    wait_progress(page, f"{len(order(harvest, lambda r: float(r['confidence']) <= MIN_CONFIDENCE))} match")
    page.close()
    return {shown[0]: ("non-medical", ""), shown[1]: ("unusable", ""), target: ("medical", "ct")}


def order(harvest: Harvest, keep) -> list[str]:
    """sha256 of the dataset's images whose manifest row ``keep`` accepts, least confident first (as shown)."""
    rows = {r["sha256"]: r for r in manifest(harvest.dataset) if keep(r)}
    return sorted(rows, key=lambda sha: (float(rows[sha]["confidence"]), sha))


def test_review_corrections_move_files_and_survive_a_reload(harvest, reviewed, review_url, browser):
    with open(harvest.dataset / "corrections.csv", newline="", encoding="utf-8") as fh:
        saved = {r["sha256"]: (r["new_label"], r["new_modality"]) for r in csv.DictReader(fh)}
    assert saved == reviewed
    files = dataset_files(harvest.dataset)
    rows = {m["sha256"]: m for m in manifest(harvest.dataset)}
    for sha, (label, modality) in reviewed.items():
        assert files[sha].startswith(f"{label}/")                # moved, and only there
        assert rows[sha]["file"] == files[sha] and rows[sha]["label"] == label
        assert rows[sha]["modality"] == modality
    page = open_review(browser, review_url)                      # a reload: a fresh page
    wait_progress(page, "Reviewed 3 /")
    assert sum(c.startswith("✓") for c in captions(page)) == 3
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)
    page.close()


def test_a_second_crawl_keeps_the_corrections(harvest, reviewed):
    before = dataset_files(harvest.dataset)
    rows2 = crawl(harvest.work, harvest.base, "run2.jsonl")
    assert {r["sha256"] for r in rows2 if r["status"] == "ok"} == set(before)
    after = dataset_files(harvest.dataset)
    assert after == before                                       # nothing put back, nothing doubled
    for sha, (label, _) in reviewed.items():
        assert after[sha].startswith(f"{label}/")
    listed = {m["file"] for m in manifest(harvest.dataset)}
    assert listed == set(after.values())


def test_training_reads_the_reviewed_dataset(harvest, reviewed):
    from training.data import scan
    frame = scan([harvest.dataset])
    labels = {Path(p).stem: name for p, name in zip(frame["path"], frame["label_name"])}
    for sha, (label, _) in reviewed.items():
        assert labels.get(sha) == (None if label == "unusable" else label)
    assert not any("/uncertain/" in p for p in frame["path"])


# ---- two reviewers at once -------------------------------------------------------------------

REVIEWER = """
import sys
from medcrawl.corrections import DatasetDir
root, label, *shas = sys.argv[1:]
for sha in shas:
    DatasetDir(root).correct(sha, label)
"""


def test_two_reviewers_at_once_lose_nothing(harvest, tmp_path):
    import shutil
    from medcrawl.corrections import DatasetDir
    dataset = tmp_path / "dataset"
    shutil.copytree(harvest.dataset, dataset, ignore=shutil.ignore_patterns("corrections.csv"))
    shas = sorted(dataset_files(dataset))
    first, second = shas[::2], shas[1::2]
    proc = subprocess.Popen([sys.executable, "-c", REVIEWER, str(dataset), "unusable", *first])
    threads = [threading.Thread(target=lambda s=s: DatasetDir(dataset).correct(s, "non-medical"))
               for s in second]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert proc.wait(timeout=120) == 0
    history = DatasetDir(dataset).history()
    assert sorted(c.sha256 for c in history) == shas              # every decision kept, once
    files = dataset_files(dataset)
    assert all(files[s].startswith("unusable/") for s in first)
    assert all(files[s].startswith("non-medical/") for s in second)
    assert {m["file"] for m in manifest(dataset)} == set(files.values())
    for sha, name in files.items():
        assert hashlib.sha256((dataset / name).read_bytes()).hexdigest() == sha
