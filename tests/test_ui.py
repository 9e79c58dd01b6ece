"""The web page in a real headless Chromium: upload, gallery, table, CSV and zip downloads, SSRF refusal.

Needs Debian's chromium (/usr/bin/chromium); Playwright drives it, no browser download.
The app runs as the real `medcrawl ui` command in a subprocess on a free 127.0.0.1 port.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import zipfile

import pytest

from tests.support.browser import ARTIFACTS, CHROMIUM, running_ui
from tests.support.oneoff_assets import make_pdf, mri_png, photo_jpeg
from tests.support.servers import serve_routes

pytestmark = [pytest.mark.slow,   # Chromium
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="needs Debian's chromium: apt-get install -y chromium")]
MAX_FILE_SIZE = 1024 * 1024


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, modality_model):
    # 127.0.0.1/32 is let through for the test site; every other private address stays refused.
    with running_ui("--host", "127.0.0.1", "--max-images", "10", "--max-file-size", str(MAX_FILE_SIZE),
                    "--allow-network", "127.0.0.1/32", "--model", str(modality_model),
                    log_path=tmp_path_factory.mktemp("ui") / "server.log") as url:
        yield url


SITE = {"/page.html": (b'<html><body><h1>Cases</h1><img src="/scan.png"><img src="/portrait.jpg">'
                      b'<img src="/gone.png"></body></html>', "text/html"),
        "/scan.png": (mri_png(), "image/png"), "/portrait.jpg": (photo_jpeg(), "image/jpeg")}


@pytest.fixture(scope="module")
def site():
    with serve_routes(SITE) as base:
        yield base


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
    # Nothing but the app itself: any other request (fonts, CDNs, analytics) is refused.
    context.route("**/*", lambda route: route.continue_()
                  if route.request.url.startswith(app_url) else route.abort())
    page = context.new_page()
    page.goto(app_url)
    page.get_by_role("button", name="Classify uploads").wait_for()
    yield page
    context.close()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("uploads")
    (root / "grace_hopper.jpg").write_bytes(photo_jpeg())
    (root / "brain_mri.png").write_bytes(mri_png())
    (root / "not_an_image.png").write_bytes(b"plain text, not an image")
    (root / "paper.pdf").write_bytes(make_pdf([photo_jpeg(), mri_png()]))
    (root / "huge.png").write_bytes(os.urandom(MAX_FILE_SIZE + 1024))
    return root


def test_upload_gallery_table_and_downloads(page, images, tmp_path):
    files = [images / n for n in ("grace_hopper.jpg", "brain_mri.png", "not_an_image.png")]
    page.locator("#uploads input[type=file]").set_input_files(files)
    page.locator("#uploads").get_by_text("not_an_image").wait_for()   # name and suffix are split
    page.get_by_role("button", name="Classify uploads").click()

    summary = page.locator("#summary")
    summary.get_by_text("3 images").wait_for(timeout=60_000)
    assert "1 medical, 1 non-medical, 0 skipped, 1 unreadable (not_an_image: 1)" in summary.inner_text()
    captions = page.locator("#gallery .caption-label, #gallery figcaption")
    captions.first.wait_for()
    texts = [t.strip() for t in captions.all_inner_texts() if t.strip()]
    assert len(texts) == 2
    medical = re.fullmatch(r"medical [01]\.\d\d · ([a-z]+) · brain_mri\.png", texts[0])   # medical first
    assert medical and re.fullmatch(r"non-medical [01]\.\d\d · grace_hopper\.jpg", texts[1])
    modality = medical[1]
    table = page.locator("#results").inner_text()
    for text in ("brain_mri.png", "grace_hopper.jpg", "not_an_image.png", "not_an_image",
                 "medical", "non-medical", "error", "modality_confidence", modality):
        assert text in table
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)

    with page.expect_download() as info:
        page.locator("#download-csv").click()
    path = tmp_path / "results.csv"
    info.value.save_as(path)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = {r["image_url"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"brain_mri.png", "grace_hopper.jpg", "not_an_image.png"}
    assert rows["brain_mri.png"]["label"] == "medical" and rows["brain_mri.png"]["modality"] == modality
    assert 0 < float(rows["brain_mri.png"]["modality_confidence"]) <= 1
    assert rows["grace_hopper.jpg"]["modality"] == rows["grace_hopper.jpg"]["modality_confidence"] == ""
    assert rows["grace_hopper.jpg"]["label"] == "non-medical"
    assert (rows["not_an_image.png"]["status"], rows["not_an_image.png"]["error"]) == ("error", "not_an_image")
    assert rows["brain_mri.png"]["sha256"] == hashlib.sha256(mri_png()).hexdigest()
    assert rows["grace_hopper.jpg"]["width"] == "512"

    with page.expect_download() as info:
        page.locator("#download-zip").click()
    info.value.save_as(tmp_path / "medical.zip")
    with zipfile.ZipFile(tmp_path / "medical.zip") as zf:
        assert zf.namelist() == [f"{hashlib.sha256(mri_png()).hexdigest()}.png"]


def test_pdf_upload(page, images):
    page.get_by_role("tab", name="PDF").click()
    page.locator("#pdf input[type=file]").set_input_files(images / "paper.pdf")
    page.locator("#pdf").get_by_text("paper").wait_for()
    page.get_by_role("button", name="Classify PDF").click()
    page.locator("#summary").get_by_text("2 images").wait_for(timeout=60_000)
    assert "1 medical, 1 non-medical" in page.locator("#summary").inner_text()
    table = page.locator("#results").inner_text()
    assert "paper.pdf#page=1" in table and "paper.pdf#page=2" in table and "pdf" in table


def classify_url(page, url: str) -> None:
    page.get_by_role("tab", name="URL").click()
    page.locator("#url textarea, #url input").first.fill(url)
    page.get_by_role("button", name="Classify URL").click()


def test_page_url(page, site):
    classify_url(page, f"{site}/page.html")
    page.locator("#summary").get_by_text("3 images").wait_for(timeout=60_000)
    assert "1 medical, 1 non-medical, 0 skipped, 1 unreadable (http_404: 1)" in page.locator("#summary").inner_text()
    table = page.locator("#results").inner_text()
    assert f"{site}/scan.png" in table and f"{site}/gone.png" in table and "http_404" in table
    captions = [t for t in page.locator("#gallery .caption-label, #gallery figcaption").all_inner_texts() if t.strip()]
    assert captions[0].startswith("medical") and "scan.png" in captions[0]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/",
                                 "http://127.0.0.2:9/x.png", "http://10.0.0.1/", "http://[::1]/"])
def test_private_url_is_refused(page, url):
    classify_url(page, url)
    page.locator("#summary").get_by_text("private_address").wait_for(timeout=30_000)
    assert "1 unreadable" in page.locator("#summary").inner_text()
    assert "private_address" in page.locator("#results").inner_text()


def test_upload_over_the_size_limit_is_refused(page, images):
    page.locator("#uploads input[type=file]").set_input_files(images / "huge.png")
    page.get_by_text("exceed", exact=False).first.wait_for(timeout=30_000)
    assert "huge.png" not in page.locator("#results").inner_text()


def test_gallery_filter_by_modality(page, images):
    page.locator("#uploads input[type=file]").set_input_files(
        [images / "grace_hopper.jpg", images / "brain_mri.png"])
    page.locator("#uploads").get_by_text("brain_mri").wait_for()
    page.get_by_role("button", name="Classify uploads").click()
    page.locator("#summary").get_by_text("2 images").wait_for(timeout=60_000)
    modality = shown_captions(page)[0].split(" · ")[1]

    def show(choice: str, names: list[str]) -> list[str]:
        """Pick a filter; wait until the gallery shows exactly ``names`` (file names, in order)."""
        page.locator("#gallery-filter input").click()
        page.get_by_role("option", name=choice, exact=True).click()
        page.wait_for_function(SHOWS, arg=names, timeout=30_000)
        return [c.split(" · ")[-1] for c in shown_captions(page)]

    assert show(modality, ["brain_mri.png"]) == ["brain_mri.png"]
    assert show("non-medical", ["grace_hopper.jpg"]) == ["grace_hopper.jpg"]
    assert show("all", ["brain_mri.png", "grace_hopper.jpg"]) == ["brain_mri.png", "grace_hopper.jpg"]


# True once the gallery's captions end in exactly these file names.
SHOWS = """(names) => JSON.stringify([...document.querySelectorAll('#gallery .caption-label')]
    .map(e => e.textContent.trim().split(' · ').pop())) === JSON.stringify(names)"""


def shown_captions(page) -> list[str]:
    captions = page.locator("#gallery .caption-label")
    captions.first.wait_for()
    return [t.strip() for t in captions.all_inner_texts() if t.strip()]
