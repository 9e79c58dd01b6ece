"""extract_page: every image markup kind, PDFs, links; absolute, de-duplicated, in order."""

from __future__ import annotations

import pytest

from medcrawl.extract.html import (
    PageLinks,
    css_background_urls,
    extract_page,
    largest_candidate,
    parse_srcset,
    url_kind,
)

BASE = "http://site.test/dir/page.html"


def images(body: str, head: str = "", base: str = BASE) -> list[str]:
    return extract_page(f"<html><head>{head}</head><body>{body}</body></html>", base).images


def test_img_src_is_resolved_against_the_page():
    assert images("<img src='a.jpg'><img src='/b.png'><img src='../c.gif'>") == [
        "http://site.test/dir/a.jpg", "http://site.test/b.png", "http://site.test/c.gif"]


def test_base_href_changes_resolution():
    assert images("<img src='a.jpg'>", head="<base href='http://cdn.test/x/'>") == [
        "http://cdn.test/x/a.jpg"]


@pytest.mark.parametrize("srcset, best", [
    ("s.jpg 400w, l.jpg 800w, m.jpg 600w", "l.jpg"),
    ("a.jpg 1x, b.jpg 3x, c.jpg 2x", "b.jpg"),
    ("only.jpg", "only.jpg"),
    ("one.jpg, two.jpg 2x", "two.jpg"),
    ("https://cdn.test/w_100,h_80/p.jpg 100w, https://cdn.test/w_900,h_700/p.jpg 900w",
     "https://cdn.test/w_900,h_700/p.jpg"),
    ("  spaced.jpg   1.5x ,\n other.jpg 0.5x ", "spaced.jpg"),
])
def test_largest_srcset_candidate(srcset, best):
    assert largest_candidate(srcset) == best


def test_srcset_parsing_keeps_commas_inside_urls():
    assert parse_srcset("a,b.jpg 1x, c.jpg 2x") == [("a,b.jpg", "1x"), ("c.jpg", "2x")]
    assert parse_srcset("") == [] and largest_candidate(None) is None


def test_img_gives_only_its_largest_candidate():
    assert images("<img src='small.jpg' srcset='small.jpg 300w, big.jpg 1200w'>") == [
        "http://site.test/dir/big.jpg"]


@pytest.mark.parametrize("attrs, expected", [
    ("src='data:image/gif;base64,R0lGODlhAQABAAAAACw=' data-src='real.jpg'", "real.jpg"),
    ("src='spacer.gif' data-lazy-src='real.jpg'", "real.jpg"),
    ("src='1x1.gif' data-srcset='r-300.jpg 300w, r-900.jpg 900w'", "r-900.jpg"),
    ("src='blank.png' data-original='real.jpg'", "real.jpg"),
    ("data-src='lazy.jpg' srcset='s.jpg 1x, l.jpg 2x'", "l.jpg"),
])
def test_lazy_attributes_beat_placeholders(attrs, expected):
    assert images(f"<img {attrs}>") == [f"http://site.test/dir/{expected}"]


def test_data_uris_are_skipped():
    assert images("<img src='data:image/png;base64,iVBORw0KGgo='>") == []


def test_picture_sources_and_fallback():
    body = ("<picture><source srcset='p.avif 1x, p2.avif 2x' type='image/avif'>"
            "<source data-srcset='p.webp'><img src='p.jpg'></picture>")
    assert images(body) == ["http://site.test/dir/p2.avif", "http://site.test/dir/p.webp",
                            "http://site.test/dir/p.jpg"]


def test_css_backgrounds_in_style_attributes_and_blocks():
    head = "<style>.a{background:url(\"s1.png\") no-repeat} @font-face{src:url(font.woff)}</style>"
    body = ("<div style=\"background-image: url('d1.jpg')\"></div>"
            "<span style='background: #fff url(d2.png) repeat-x; color: red'></span>"
            "<p style='list-style-image: url(bullet.png)'></p>")
    assert images(body, head) == ["http://site.test/dir/s1.png", "http://site.test/dir/d1.jpg",
                                  "http://site.test/dir/d2.png"]


def test_css_background_urls_helper():
    css = "x{background-image:url( 'a.png' ), url(b.png)} y{mask:url(m.svg)}"
    assert css_background_urls(css) == ["a.png", "b.png"]


def test_anchor_to_image_file_and_open_graph():
    head = ("<meta property='og:image' content='https://site.test/og.jpg'>"
            "<meta name='twitter:image' content='tw.png'>")
    body = "<a href='full.JPEG?size=l'>zoom</a><a href='page.html'>page</a>"
    links = extract_page(f"<html><head>{head}</head><body>{body}</body></html>", BASE)
    assert links.images == ["https://site.test/og.jpg", "http://site.test/dir/tw.png",
                            "http://site.test/dir/full.JPEG?size=l"]
    assert links.links == ["http://site.test/dir/page.html"]


def test_pdfs_from_links_embeds_iframes_and_objects():
    body = ("<a href='a.pdf'>a</a><embed src='b.PDF'><iframe src='c.pdf#page=2'></iframe>"
            "<object data='viewer?id=4' type='application/pdf'></object>"
            "<iframe src='widget.html'></iframe><embed src='movie.swf'>")
    links = extract_page(f"<html><body>{body}</body></html>", BASE)
    assert links.pdfs == ["http://site.test/dir/a.pdf", "http://site.test/dir/b.PDF",
                          "http://site.test/dir/c.pdf", "http://site.test/dir/viewer?id=4"]
    assert links.links == ["http://site.test/dir/widget.html", "http://site.test/dir/movie.swf"]


def test_links_are_deduplicated_without_fragments_and_non_http_schemes():
    body = ("<a href='b.html#one'>1</a><a href='b.html#two'>2</a><a href='b.html'>3</a>"
            "<a href='#top'>top</a><a href='mailto:x@y.z'>m</a><a href='javascript:void(0)'>j</a>"
            "<a href='tel:123'>t</a><a href='ftp://site.test/f'>f</a><area href='map.html'>"
            "<a href='  c.html  '>ws</a><a>none</a>")
    assert extract_page(f"<html><body>{body}</body></html>", BASE).links == [
        "http://site.test/dir/b.html", "http://site.test/dir/page.html",
        "http://site.test/dir/map.html", "http://site.test/dir/c.html"]


def test_images_in_document_order_and_deduplicated():
    body = ("<img src='1.jpg'><div style='background:url(2.jpg)'></div><img src='1.jpg#x'>"
            "<a href='3.png'>3</a><img src='2.jpg'>")
    assert images(body, head="<meta property='og:image' content='0.jpg'>") == [
        f"http://site.test/dir/{n}" for n in ("0.jpg", "1.jpg", "2.jpg", "3.png")]


def test_bytes_input_uses_the_declared_charset():
    html = "<html><head><meta charset='iso-8859-1'></head><body><img src='caf\xe9.jpg'></body></html>"
    assert extract_page(html.encode("latin-1"), BASE).images == ["http://site.test/dir/caf%C3%A9.jpg"]


def test_empty_and_broken_markup():
    assert extract_page("", BASE) == PageLinks()
    assert extract_page(b"<img src='a.jpg'", BASE).images in ([], ["http://site.test/dir/a.jpg"])
    assert images("<div><img src='x.png'><p>unclosed") == ["http://site.test/dir/x.png"]


@pytest.mark.parametrize("url, kind", [
    ("http://h/a.JPG", "image"), ("http://h/a.webp?x=1", "image"), ("http://h/a.svg", "image"),
    ("http://h/doc.pdf", "pdf"), ("http://h/doc.PDF#p=1", "pdf"), ("http://h/page", "page"),
    ("http://h/jpg/index.html", "page"),
])
def test_url_kind(url, kind):
    assert url_kind(url) == kind
