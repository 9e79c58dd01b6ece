"""End-to-end: `scrapy crawl site` of a journal-like site on 127.0.0.1 with the dataset settings,
then the real ``datasets`` library loading the folder it wrote (run once per module)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from pathlib import Path

import datasets
import pytest
from PIL import Image

from medcrawl.splits import parse_splits, split_for
from tests.support.crawls import scrapy_crawl
from tests.support.oneoff_assets import make_pdf, mri_png, photo_jpeg

pytestmark = pytest.mark.slow                       # slow: a crawl

SPLITS = "train:0.5,validation:0.25,test:0.25"
ARTICLES = 8
LICENSE = "https://creativecommons.org/licenses/by/4.0/"
# Articles under another licence than LICENSE (None: the page declares none), and the dataset's filter.
OTHER_LICENSES = {5: "https://creativecommons.org/licenses/by-nc/4.0/", 6: None,
                  7: "https://creativecommons.org/publicdomain/zero/1.0/"}
SPDX = {LICENSE: "CC-BY-4.0", OTHER_LICENSES[5]: "CC-BY-NC-4.0", None: "", OTHER_LICENSES[7]: "CC0-1.0"}
ALLOWED = ("CC-BY-4.0", "CC0-1.0")


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def pictures() -> list[Image.Image]:
    """Distinct real pictures: crops of a portrait and turns of an MRI slice."""
    photo = Image.open(io.BytesIO(photo_jpeg())).convert("RGB")
    mri = Image.open(io.BytesIO(mri_png())).convert("RGB")
    crops = [photo.crop((x, y, x + 256, y + 256)) for x, y in ((0, 0), (256, 0), (0, 300), (200, 340))]
    return crops + [mri, mri.rotate(90), mri.transpose(Image.Transpose.FLIP_TOP_BOTTOM), mri.rotate(270)]


def compound(panels: list[Image.Image], gutter: int = 8) -> Image.Image:
    """A 2 x 2 journal figure: four panels between white gutters."""
    side = 200
    figure = Image.new("RGB", (2 * side + 3 * gutter, 2 * side + 3 * gutter), "white")
    for n, panel in enumerate(panels):
        place = (gutter + (n % 2) * (side + gutter), gutter + (n // 2) * (side + gutter))
        figure.paste(panel.resize((side, side)), place)
    return figure


def article(title: str, figures: list[tuple[str, str, str]], license: str | None = LICENSE) -> str:
    """An article page: licence meta tag and link (none when ``license`` is None), figures with alt
    text and captions."""
    body = "".join(f'<figure><img src="{src}" alt="{alt}"><figcaption>{caption}</figcaption></figure>'
                   for src, alt, caption in figures)
    head = (f'<meta name="dc.rights" content="{license}"><link rel="license" href="{license}">'
            if license else "")
    notice = f'<p>Licensed under <a rel="license" href="{license}">{license}</a>.</p>' if license else ""
    return (f'<html><head><title>{title}</title>{head}</head><body><h1>{title}</h1>{body}{notice}'
            f'</body></html>')


class Journal:
    """What the site holds: image path -> (bytes, article pages that show it)."""

    def __init__(self, root: Path):
        self.root, self.images, self.pages = root, {}, []
        photo = Image.open(io.BytesIO(photo_jpeg())).convert("RGB")
        own = pictures()
        figures: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
        for n in range(ARTICLES):                       # one picture of its own per article
            figures[n].append(self.image(f"img/own-{n}.jpg", jpeg(own[n]), f"Figure 1. Picture {n}.", "own"))
        quadrants = [own[4].crop((x, y, x + 128, y + 128)) for x, y in ((0, 0), (128, 0), (0, 128), (128, 128))]
        figures[0].append(self.image("img/figure-2.png", self.png(compound(quadrants)),
                                     "Figure 2. (a-d) Four MRI views.", "compound"))
        figures[1].append(self.image("img/portrait-small.jpg", jpeg(photo.resize((256, 300)), 70),
                                     "Figure 2. The portrait, small.", "portrait"))
        figures[2].append(self.image("img/portrait.jpg", photo_jpeg(), "Figure 2. The portrait.", "portrait"))
        figures[3].append(self.image("img/portrait-medium.jpg", jpeg(photo.resize((384, 450)), 80),
                                     "Figure 2. The portrait again.", "portrait"))
        for n, figs in figures.items():
            self.write(f"article/{n}.html", article(f"Article {n}", figs, OTHER_LICENSES.get(n, LICENSE)))
            self.pages.append(f"article/{n}.html")
        self.write("article/supplement.pdf", make_pdf([mri_png()]))
        links = "".join(f'<a href="{p}">{p}</a> ' for p in [*self.pages, "article/supplement.pdf"])
        self.write("index.html", f"<html><head><title>Journal</title></head><body>{links}</body></html>")

    @staticmethod
    def png(image: Image.Image) -> bytes:
        buf = io.BytesIO()
        image.save(buf, "PNG")
        return buf.getvalue()

    def image(self, path: str, data: bytes, caption: str, alt: str) -> tuple[str, str, str]:
        self.write(path, data)
        self.images[path] = data
        return f"../{path}", alt, caption

    def write(self, path: str, data: bytes | str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)


@pytest.fixture(scope="module")
def harvest(tmp_path_factory, serve):
    site = tmp_path_factory.mktemp("journal")
    work = tmp_path_factory.mktemp("harvest")
    journal = Journal(site)
    with serve(site) as (base, _):
        proc = scrapy_crawl(work, "-a", f"start_urls={base}/", "-O", f"{work}/rows.jsonl",
                            "-s", "MEDCRAWL_DATASET_DIR=dataset", "-s", "MEDCRAWL_DATASET_MIN_CONFIDENCE=0",
                            "-s", f"MEDCRAWL_DATASET_SPLITS={SPLITS}", "-s", "MEDCRAWL_SPLIT_PANELS=True",
                            "-s", f"MEDCRAWL_DATASET_LICENSES={','.join(ALLOWED)}",
                            "-s", "MEDCRAWL_BATCH_MAX_WAIT=0.3", "-s", "AUTOTHROTTLE_START_DELAY=0.1",
                            "-s", f"LOG_FILE={work}/crawl.log")
    log = (work / "crawl.log").read_text() if (work / "crawl.log").exists() else ""
    assert proc.returncode == 0, log[-4000:] + proc.stderr[-2000:]
    rows = [json.loads(line) for line in (work / "rows.jsonl").read_text().splitlines()]
    with open(work / "dataset" / "manifest.csv", newline="", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    return journal, base, work / "dataset", rows, manifest


def name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def page_license(source_url: str) -> str:
    """The SPDX licence the test site's page (or the PDF, which declares none) gives its images."""
    page = source_url.rsplit("/", 1)[-1]
    if not page.endswith(".html"):
        return ""
    return SPDX[OTHER_LICENSES.get(int(page.removesuffix(".html")), LICENSE)]


def test_only_listed_licences_enter_the_dataset_every_image_keeps_its_row(harvest):
    journal, base, root, rows, manifest = harvest
    ok = [r for r in rows if r["status"] == "ok"]
    assert {name(r["image_url"]) for r in ok} >= {name(path) for path in journal.images}
    assert all(r["license"] == page_license(r["source_url"]) for r in rows), [
        (r["source_url"], r["license"]) for r in rows]
    assert {r["license"] for r in ok} == {"CC-BY-4.0", "CC-BY-NC-4.0", "", "CC0-1.0"}
    assert manifest and all(r["license"] in ALLOWED for r in manifest)
    entered = {(r["image_url"], r["source_url"]) for r in manifest}
    assert entered == {(r["image_url"], r["source_url"]) for r in ok if r["license"] in ALLOWED}
    assert f"{base}/article/7.html" in {r["source_url"] for r in manifest}          # CC0 enters too
    files = {p.stem for p in root.rglob("*.jpg")}
    for n in (5, 6):                                  # another licence, or none: a feed row, no file
        own = next(r for r in ok if name(r["image_url"]) == f"own-{n}.jpg")
        assert own["sha256"] not in files and own["source_url"] == f"{base}/article/{n}.html"


def test_every_row_says_whether_it_is_compound(harvest):
    _, _, _, rows, _ = harvest
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(isinstance(r["compound"], bool) for r in ok)
    assert {name(r["image_url"]) for r in ok if r["compound"]} == {"figure-2.png"}


def test_panels_become_rows_stored_labelled_and_captioned(harvest):
    journal, base, root, rows, manifest = harvest
    panels = sorted((r for r in rows if r["panel"]), key=lambda r: r["panel"])
    assert [name(r["image_url"]) for r in panels] == [f"figure-2.png#panel={n}" for n in range(1, 5)]
    assert all(r["status"] == "ok" and r["source_url"] == f"{base}/article/0.html" and r["path"] for r in panels)
    assert len({r["sha256"] for r in panels}) == 4
    assert {r["image_url"] for r in manifest} >= {r["image_url"] for r in panels}
    figure = next(r for r in rows if name(r["image_url"]) == "figure-2.png")
    assert figure["compound"] is True and figure["panel"] is None


def test_near_duplicates_leave_one_file_the_largest(harvest):
    journal, _, root, rows, manifest = harvest
    portrait = {r["sha256"]: r for r in manifest if r["image_url"].rsplit("/", 1)[-1].startswith("portrait")}
    largest = hashlib.sha256(journal.images["img/portrait.jpg"]).hexdigest()
    assert len(portrait) == 3
    files = {r["file"] for r in portrait.values()}
    assert len(files) == 1 and Path(files.pop()).stem == largest
    assert sum(1 for p in root.rglob("*.jpg") if p.stem in portrait) == 1
    assert {sha: r["duplicate_of"] for sha, r in portrait.items()} == {
        sha: "" if sha == largest else largest for sha in portrait}
    feed = {r["sha256"]: r["duplicate_of"] for r in rows if r["sha256"] in portrait}
    pixels = {sha: int(r["width"]) * int(r["height"]) for sha, r in portrait.items()}
    assert feed[largest] == ""               # a feed row names the image kept when it was written
    assert all(kept == "" or pixels[kept] > pixels[sha] for sha, kept in feed.items())


def test_documents_and_groups_stay_in_one_split(harvest):
    _, base, root, rows, manifest = harvest
    splits = parse_splits(SPLITS.split(","))
    by_file = defaultdict(list)
    for row in manifest:
        by_file[row["file"]].append(row)
    alone = [rows[0] for rows in by_file.values() if len({r["sha256"] for r in rows}) == 1]
    assert len(alone) >= ARTICLES
    for row in alone:                                # no near-duplicate: its own document decides
        assert row["split"] == split_for(row["source_url"], splits), row
        assert row["file"].startswith(f"{row['split']}/{row['label']}/")
    assert all(len({r["split"] for r in rows}) == 1 for rows in by_file.values())


def test_datasets_loads_the_splits_and_columns(harvest):
    _, _, root, rows, manifest = harvest
    loaded = datasets.load_dataset("imagefolder", data_dir=str(root))
    files = {row["file"] for row in manifest}
    assert set(loaded) == {f.split("/", 1)[0] for f in files}
    for split in loaded.values():
        assert {"image", "label", "modality", "caption", "alt", "license", "source_url", "image_url"} <= set(
            split.column_names)
    images = [row for split in loaded.values() for row in split]
    assert len(images) == len(files)
    by_url = {row["image_url"].rsplit("/", 1)[-1]: row for row in images}
    assert by_url["figure-2.png#panel=2"]["panel"] == 2
    assert all(row["label"] in ("medical", "non-medical") for row in images)


def test_card_counts_what_the_folder_holds(harvest):
    _, base, root, _, manifest = harvest
    card = (root / "README.md").read_text()
    header = card.split("---")[1]
    assert "task_categories:\n- image-classification" in header and "- n<1K" in header
    host = base.split("//", 1)[1]
    assert f"| {host} |" in card
    kept = {row["file"] for row in manifest}
    splits = {f.split("/", 1)[0] for f in kept}
    for split in splits:
        count = sum(1 for f in kept if f.startswith(f"{split}/"))
        assert f"| {split} | {count} |" in card
