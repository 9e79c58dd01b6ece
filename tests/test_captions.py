"""Text and provenance columns (alt, title, caption, page_title, license, license_url) end to end.

A small journal-like site made here (articles with figures, captions, alt / title text,
aria-describedby, licence links, meta tags, JSON-LD, a Creative Commons badge, and a PDF with
captioned figures and a licence sentence) is served on 127.0.0.1, crawled for real and read
back through the feed; ``medcrawl classify`` reads the same page and PDF; the report shows the
captions, escaped.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image

from medcrawl.extract.html import extract_page
from medcrawl.extract.pdf import extract_pdf_images, pdf_rows
from medcrawl.oneoff.cli import main
from medcrawl.oneoff.harvest import Harvest, Image as HarvestImage
from test_crawl import scrapy_crawl

TEXT_COLUMNS = ("alt", "title", "caption", "page_title", "license", "license_url")
BY = "https://creativecommons.org/licenses/by/4.0/"
BY_NC_SA = "https://creativecommons.org/licenses/by-nc-sa/4.0/"
BY_SA_3 = "http://creativecommons.org/licenses/by-sa/3.0/"
CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"


def picture(seed: int, size: int = 160) -> bytes:
    """A distinct PNG per seed (noise, so no two images share content)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


ARTICLE = """<!doctype html><html><head>{head}</head><body><article>
<h1>Findings</h1><p>Running text of the article, long enough to be a paragraph of its own.</p>
{body}</article>
<footer>{footer}</footer></body></html>"""

PAGES = {
    # rel="license" anchor in the footer; figures with figcaption (one with its own licence link),
    # aria-describedby, a caption class next to the image, a "Figure 5:" paragraph after it, a logo.
    "chest.html": dict(
        head="<title>Chest radiographs in adults | J Test Med</title>",
        body="""<figure id="f1"><a href="/img/f1.png"><img src="/img/f1-thumb.png" alt="PA chest radiograph"
 title="Click to enlarge"></a><figcaption><b>Figure 1.</b> Posteroanterior chest
 radiograph showing a right lower lobe opacity.</figcaption></figure>
<figure><img src="/img/f2.png" alt="CT"><figcaption>Figure 2. Axial CT. &lt;b&gt;bold&lt;/b&gt; &amp; more
 <a rel="license" href="https://creativecommons.org/licenses/by-nc-sa/4.0/">CC BY-NC-SA 4.0</a></figcaption></figure>
<img src="/img/f3.png" aria-describedby="legend3"><p id="legend3">Figure 3. Lateral view.</p>
<div class="fig"><div class="graphic"><img src="/img/f4.png"></div><div class="fig-caption">Fig. 4 Ultrasound of the liver.</div></div>
<p><img src="/img/f5.png"></p><p>Figure 5: MRI of the knee, sagittal T2.</p>
<img src="/img/logo.png" alt="Journal logo">""",
        footer=f'<a rel="license" href="{BY}">CC BY 4.0</a>'),
    # dc.rights meta with a licence name; og:title only; an image with no text at all.
    "knee.html": dict(
        head='<meta property="og:title" content="Knee MRI case"><meta name="DC.rights" content="CC BY-NC 4.0">',
        body='<img src="/img/k1.png">', footer=""),
    # JSON-LD licence (nested in the article object).
    "public.html": dict(
        head='<title>Public domain atlas</title><script type="application/ld+json">'
             + json.dumps({"@context": "https://schema.org", "@graph": [
                 {"@type": "ScholarlyArticle", "name": "Atlas", "license": {"@id": CC0}}]})
             + "</script>",
        body='<figure><img src="/img/p1.png" alt="Hand x-ray"><figcaption>Figure 1. Hand.</figcaption></figure>',
        footer=""),
    # A Creative Commons badge: a link to the licence deed around the badge image.
    "badge.html": dict(
        head="<title>Badge page</title>",
        body='<img src="/img/b1.png" title="Fundus photograph">',
        footer=f'<a href="{BY_SA_3}"><img src="/img/cc-by-sa.png" alt="Creative Commons License"></a>'),
    # citation_license meta; and a page that declares no licence.
    "cited.html": dict(head=f'<title>Cited</title><meta name="citation_license" content="{BY}">',
                       body='<img src="/img/c1.png" alt="Dermoscopy">', footer=""),
    "none.html": dict(head="<title>No licence</title>", body='<img src="/img/n1.png" alt="Chart">',
                      footer="© 2024 The Publisher. All rights reserved."),
}

# image URL path -> (alt, title, caption, page_title, license, license_url) a row must carry
EXPECTED_HTML = {
    ("/img/f1-thumb.png", "chest.html"): ("PA chest radiograph", "Click to enlarge",
                                          "Figure 1. Posteroanterior chest radiograph showing a right lower lobe opacity.",
                                          "Chest radiographs in adults | J Test Med", "CC-BY-4.0", BY),
    ("/img/f1.png", "chest.html"): ("PA chest radiograph", "Click to enlarge",        # the link's <img>
                                    "Figure 1. Posteroanterior chest radiograph showing a right lower lobe opacity.",
                                    "Chest radiographs in adults | J Test Med", "CC-BY-4.0", BY),
    ("/img/f2.png", "chest.html"): ("CT", "", "Figure 2. Axial CT. <b>bold</b> & more CC BY-NC-SA 4.0",
                                    "Chest radiographs in adults | J Test Med", "CC-BY-NC-SA-4.0", BY_NC_SA),
    ("/img/f3.png", "chest.html"): ("", "", "Figure 3. Lateral view.",
                                    "Chest radiographs in adults | J Test Med", "CC-BY-4.0", BY),
    ("/img/f4.png", "chest.html"): ("", "", "Fig. 4 Ultrasound of the liver.",
                                    "Chest radiographs in adults | J Test Med", "CC-BY-4.0", BY),
    ("/img/f5.png", "chest.html"): ("", "", "Figure 5: MRI of the knee, sagittal T2.",
                                    "Chest radiographs in adults | J Test Med", "CC-BY-4.0", BY),
    ("/img/logo.png", "chest.html"): ("Journal logo", "", "",
                                      "Chest radiographs in adults | J Test Med", "CC-BY-4.0", BY),
    ("/img/k1.png", "knee.html"): ("", "", "", "Knee MRI case", "CC-BY-NC-4.0", ""),
    ("/img/p1.png", "public.html"): ("Hand x-ray", "", "Figure 1. Hand.", "Public domain atlas", "CC0-1.0", CC0),
    ("/img/b1.png", "badge.html"): ("", "Fundus photograph", "", "Badge page", "CC-BY-SA-3.0", BY_SA_3),
    ("/img/cc-by-sa.png", "badge.html"): ("Creative Commons License", "", "", "Badge page", "CC-BY-SA-3.0", BY_SA_3),
    ("/img/c1.png", "cited.html"): ("Dermoscopy", "", "", "Cited", "CC-BY-4.0", BY),
    ("/img/n1.png", "none.html"): ("Chart", "", "", "No licence", "", ""),
}

PDF_TITLE = "Case series: imaging of the abdomen"
PDF_CAPTIONS = ["Figure 1. Abdominal radiograph, supine.", "Fig. 2: Contrast-enhanced CT of the abdomen."]


def make_pdf() -> bytes:
    """Two pages: a captioned figure under a paragraph; a table caption above a figure whose own
    caption is under it; a Creative Commons sentence on page 1; the title in the metadata."""
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_textbox(pymupdf.Rect(72, 60, 540, 110),
                        "Open Access This article is licensed under a Creative Commons Attribution 4.0 "
                        "International License. A paragraph of running text before the figure.", fontsize=10)
    page.insert_image(pymupdf.Rect(150, 130, 450, 380), stream=picture(101, 200))
    page.insert_text((150, 400), PDF_CAPTIONS[0], fontsize=10)
    page = doc.new_page()
    page.insert_text((150, 110), "Table 1. Patient characteristics.", fontsize=10)
    page.insert_image(pymupdf.Rect(150, 130, 450, 380), stream=picture(102, 200))
    page.insert_text((150, 400), PDF_CAPTIONS[1], fontsize=10)
    page.insert_image(pymupdf.Rect(480, 700, 520, 740), stream=picture(103, 40))    # a logo, no caption
    doc.set_metadata({"title": PDF_TITLE})
    data = doc.tobytes()
    doc.close()
    return data


def build_site(root: Path) -> None:
    links = "".join(f'<a href="/{name}">{name}</a> ' for name in PAGES)
    (root / "index.html").write_text(f"<html><body>{links}<a href='/paper.pdf'>PDF</a></body></html>")
    for name, parts in PAGES.items():
        (root / name).write_text(ARTICLE.format(**parts))
    (root / "img").mkdir()
    for seed, (path, _) in enumerate(EXPECTED_HTML):
        (root / path.lstrip("/")).write_bytes(picture(seed))
    (root / "paper.pdf").write_bytes(make_pdf())


@pytest.fixture(scope="module")
def site(serve, tmp_path_factory):
    root = tmp_path_factory.mktemp("journal")
    build_site(root)
    with serve(root) as (base, _):
        yield base, root


@pytest.fixture(scope="module")
def crawled(site, tmp_path_factory) -> tuple[Path, list[dict]]:
    base, _ = site
    work = tmp_path_factory.mktemp("crawl")
    proc = scrapy_crawl(work, "-a", f"start_urls={base}/", "-O", "rows.jsonl", "-s", "IMAGES_STORE=images",
                        "-s", "RETRY_TIMES=0", "-s", "AUTOTHROTTLE_START_DELAY=0.1",
                        "-s", "MEDCRAWL_BATCH_MAX_WAIT=0.3", "-s", f"LOG_FILE={work}/crawl.log")
    assert proc.returncode == 0, (work / "crawl.log").read_text()[-4000:] + proc.stderr[-2000:]
    return work, [json.loads(line) for line in (work / "rows.jsonl").read_text().splitlines()]


def text_of(row: dict) -> tuple:
    return tuple(row[name] for name in TEXT_COLUMNS)


def test_crawl_rows_carry_each_images_text_and_licence(site, crawled):
    base, _ = site
    _, rows = crawled
    got = {(r["image_url"].removeprefix(base), r["source_url"].removeprefix(base + "/")): r
           for r in rows if r["source_type"] == "html"}
    assert set(got) == set(EXPECTED_HTML)
    for key, expected in EXPECTED_HTML.items():
        assert got[key]["status"] == "ok", got[key]
        assert text_of(got[key]) == expected, key


def test_crawl_pdf_rows_carry_captions_title_and_licence(site, crawled):
    base, _ = site
    _, rows = crawled
    pdf = sorted((r for r in rows if r["source_type"] == "pdf"), key=lambda r: r["image_url"])
    assert [(r["pdf_page"], r["caption"]) for r in pdf] == [(1, PDF_CAPTIONS[0]), (2, PDF_CAPTIONS[1]), (2, "")]
    assert {(r["page_title"], r["license"], r["license_url"], r["alt"]) for r in pdf} == {
        (PDF_TITLE, "CC-BY-4.0", "", "")}


def test_page_licence_absent_when_none_declared():
    links = extract_page("<html><head><title>t</title></head><body><img src='a.png'>"
                         "<a href='/terms'>Terms of use</a></body></html>", "http://x.test/p")
    assert (links.license, links.license_url) == ("", "")
    assert links.row_text("http://x.test/a.png")["license"] == ""


def test_unknown_rel_license_keeps_its_url_without_an_identifier():
    links = extract_page("<html><body><img src='a.png'><a rel='License' href='/reuse.html'>reuse</a>"
                         "</body></html>", "http://x.test/dir/p")
    assert (links.license, links.license_url) == ("", "http://x.test/reuse.html")


def test_xmp_rights_give_the_pdf_licence():
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(100, 100, 300, 300), stream=picture(7, 64))
    page.insert_text((100, 320), "Figure 1 A figure without punctuation after its number", fontsize=10)
    doc.set_xml_metadata('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                         '<rdf:Description xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/">'
                         f'<xmpRights:WebStatement>{BY_NC_SA}</xmpRights:WebStatement>'
                         '</rdf:Description></rdf:RDF></x:xmpmeta>')
    [row] = pdf_rows(doc.tobytes(), "http://x.test/a.pdf")
    assert (row.caption, row.license, row.license_url, row.page_title) == (
        "Figure 1 A figure without punctuation after its number", "CC-BY-NC-SA-4.0", BY_NC_SA, "")


def test_pdf_text_far_from_or_unlike_a_caption_is_not_one():
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(100, 100, 300, 300), stream=picture(8, 64))
    page.insert_textbox(pymupdf.Rect(100, 310, 500, 400), "Running text that follows the image and goes on "
                        "for long enough to be a paragraph of the article, not a label of a panel. " * 2, fontsize=10)
    page.insert_text((100, 420), "Figure 9. The caption of some other figure, under a paragraph.", fontsize=10)
    page.insert_text((100, 300 + 0.6 * page.rect.height), "Figure 10. Too far below.", fontsize=10)
    [image] = extract_pdf_images(doc.tobytes())
    assert image.caption == ""


def test_classify_page_and_pdf_give_the_same_columns(site, tmp_path, capsysbinary):
    base, root = site
    out = tmp_path / "rows.jsonl"
    assert main(["classify", "--allow-private-urls", f"{base}/chest.html", str(root / "paper.pdf"), "-o", str(out), "-q"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    page = {(r["image_url"].removeprefix(base), "chest.html"): text_of(r) for r in rows if r["source_type"] == "html"}
    assert page == {k: v for k, v in EXPECTED_HTML.items() if k[1] == "chest.html"}
    assert [r["caption"] for r in rows if r["source_type"] == "pdf"] == [*PDF_CAPTIONS, ""]
    assert main(["classify", "--allow-private-urls", f"{base}/chest.html", "--format", "table"]) == 0
    table = capsysbinary.readouterr().out.decode().splitlines()
    assert table[0].split()[-1] == "caption"
    line = next(t for t in table if "/img/f1-thumb.png " in t)
    [caption] = [r["caption"] for r in rows if r["image_url"].endswith("/img/f1-thumb.png")]
    cell = line.split("  ")[-1].strip()
    assert cell.startswith("Figure 1.") and cell.endswith("…") and caption.startswith(cell[:-1])  # cut in the table only
    assert max(map(len, table)) <= shutil.get_terminal_size((120, 24)).columns


def test_report_shows_each_pictures_caption_escaped(crawled, tmp_path):
    work, _ = crawled
    out = tmp_path / "report.html"
    assert main(["report", str(work / "rows.jsonl"), "--store", str(work / "images"), "-o", str(out)]) == 0
    html = out.read_text()
    assert "Figure 2. Axial CT. &lt;b&gt;bold&lt;/b&gt; &amp; more CC BY-NC-SA 4.0</p>" in html
    assert "<b>bold</b>" not in html
    assert ">Figure 1. Posteroanterior chest radiograph showing a right lower lobe opacity.</p>" in html
    assert ">Journal logo</p>" in html                     # no caption: the alt text
    assert f">{PDF_CAPTIONS[1]}</p>" in html


def test_review_details_show_the_caption_escaped(crawled):
    from medcrawl.oneoff.review import details, markdown_text

    work, _ = crawled
    harvest = Harvest.open(work / "rows.jsonl", work / "images")
    figure = next(i for i in harvest.images.values() if i.row["image_url"].endswith("/img/f2.png"))
    assert figure.caption == "Figure 2. Axial CT. <b>bold</b> & more CC BY-NC-SA 4.0"
    text = details(figure, harvest)
    assert markdown_text(figure.caption) in text and "&lt;b&gt;bold&lt;/b&gt; &amp; more" in text
    assert "<b>" not in text
    logo = next(i for i in harvest.images.values() if i.row["image_url"].endswith("/img/logo.png"))
    assert logo.caption == "Journal logo"


def test_an_image_takes_the_first_caption_of_its_rows_over_alt_text():
    image = HarvestImage({"sha256": "0" * 64, "alt": ""}, None)
    for row in ({"alt": "a logo"}, {"caption": "Figure 1. X."}, {"caption": "Figure 2. Y.", "alt": "z"}):
        image.take_caption(row)
    assert image.caption == "Figure 1. X."
    only_alt = HarvestImage({"sha256": "1" * 64}, None)
    only_alt.take_caption({"alt": " a   logo ", "caption": ""})
    assert only_alt.caption == "a logo"


def texts(body: str, head: str = "") -> dict[str, dict]:
    links = extract_page(f"<html><head>{head}</head><body>{body}</body></html>", "http://x.test/a/")
    return {url.rsplit("/", 1)[1]: links.row_text(url) for url in links.images}


def test_picture_sources_take_the_img_alt_and_the_figure_caption():
    got = texts('<figure><picture><source srcset="p.webp 2x"><source srcset="p.avif"><img src="p.png" alt="Scan">'
                "</picture><figcaption>Figure 7. Scan.</figcaption></figure>")
    assert {name: (t["alt"], t["caption"]) for name, t in got.items()} == {
        name: ("Scan", "Figure 7. Scan.") for name in ("p.webp", "p.avif", "p.png")}


def test_nested_figures_keep_their_own_captions():
    got = texts("<figure><figure><img src='a.png'><figcaption>(a) Left.</figcaption></figure>"
                "<img src='b.png'><figcaption>Figure 1. Both panels.</figcaption></figure>")
    assert (got["a.png"]["caption"], got["b.png"]["caption"]) == ("(a) Left.", "Figure 1. Both panels.")


def test_a_caption_under_one_image_is_not_the_next_ones():
    got = texts("<p><img src='a.png'></p><p>Figure 1. Under a.</p><p><img src='b.png'></p><h2>Next</h2>"
                "<p>Fig. 2 Above c.</p><p><img src='c.png'></p><p>Running text.</p>")
    assert [got[n]["caption"] for n in ("a.png", "b.png", "c.png")] == ["Figure 1. Under a.", "", "Fig. 2 Above c."]


def test_figure_licence_beats_the_pages_and_broken_json_ld_is_skipped():
    head = ('<script type="application/ld+json">{not json</script>'
            '<META NAME="DCTERMS.License" CONTENT="https://creativecommons.org/licenses/by/4.0/legalcode">')
    got = texts("<figure><img src='a.png'><figcaption>Figure 1. <a href='https://creativecommons.org/publicdomain/"
                "zero/1.0/'>CC0</a></figcaption></figure><img src='b.png'>", head)
    assert (got["a.png"]["license"], got["a.png"]["license_url"]) == (
        "CC0-1.0", "https://creativecommons.org/publicdomain/zero/1.0/")
    assert (got["b.png"]["license"], got["b.png"]["license_url"]) == (
        "CC-BY-4.0", "https://creativecommons.org/licenses/by/4.0/legalcode")


def test_long_captions_are_cut_and_whitespace_collapsed():
    got = texts("<figure><img src='a.png'><figcaption>Figure 1.\n\n  " + "word " * 1000 + "</figcaption></figure>")
    caption = got["a.png"]["caption"]
    assert len(caption) == 2000 and caption.endswith("…") and "  " not in caption
