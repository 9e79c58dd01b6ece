"""Find image, PDF and page links in one HTML page, and what the page says about each image
(shared by the crawl and the CLI)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from posixpath import splitext
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from parsel import Selector
from w3lib.encoding import html_to_unicode
from w3lib.html import strip_html5_whitespace
from w3lib.url import safe_url_string

from medcrawl.extract.captions import ImageText, figure_of, image_text, page_title
from medcrawl.extract.licenses import figure_license, page_license
from medcrawl.extract.medical import is_medical_name
from medcrawl.model.images import IMAGE_SUFFIXES

PDF_EXTENSIONS = frozenset({".pdf"})
FOLLOW_SCHEMES = frozenset({"http", "https"})
# Lazy-loading attributes, most specific first; any of them beats a placeholder `src`.
LAZY_SRCSET_ATTRS = ("data-srcset", "data-lazy-srcset")
LAZY_SRC_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-lazy")
NODES_XPATH = (
    "//img | //source[@srcset or @data-srcset] | //*[@style] | //style | //a[@href] | //area[@href]"
    " | //embed[@src] | //iframe[@src] | //frame[@src] | //object[@data] | //link[@rel='image_src']"
    " | //meta[@property='og:image' or @property='og:image:url' or @property='og:image:secure_url'"
    " or @name='og:image' or @name='twitter:image' or @property='twitter:image']"
)
# url(...) inside background / background-image declarations (style attributes and <style>).
BACKGROUND_RE = re.compile(r"background(?:-image)?\s*:([^;}]*)", re.I)
CSS_URL_RE = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)""", re.I)


@dataclass
class PageLinks:
    """Absolute, de-duplicated, fragment-free URLs found on a page, in document order."""

    images: list[str] = field(default_factory=list)
    pdfs: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    medical: list[str] = field(default_factory=list)     # DICOM / NIfTI files (.dcm, .nii.gz, ...)
    page_title: str = ""
    license: str = ""                                      # SPDX identifier the page declares
    license_url: str = ""
    texts: dict[str, ImageText] = field(default_factory=dict)   # image URL -> its first markup's text
    licenses: dict[str, tuple[str, str]] = field(default_factory=dict)   # image URL -> its figure's licence

    def row_text(self, url: str) -> dict[str, Any]:
        """The text and provenance columns of an image row: the image's alt, title and caption, the
        page's title, and the licence of its figure when it declares one, else the page's."""
        text = self.texts.get(url, ImageText())
        license, license_url = self.licenses.get(url, (self.license, self.license_url))
        return {"alt": text.alt, "title": text.title, "caption": text.caption,
                "page_title": self.page_title, "license": license, "license_url": license_url}


def extract_page(html: str | bytes, base_url: str) -> PageLinks:
    """Parse a page and return its images, PDFs and links to follow."""
    if isinstance(html, bytes):
        html = html_to_unicode(None, html)[1]
    sel = Selector(text=html or "<html></html>", type="html")
    base = _base_url(sel, base_url)
    found = _Collector(base)
    found.result.page_title = page_title(sel)
    found.result.license, found.result.license_url = page_license(sel, base)
    for node in sel.xpath(NODES_XPATH):
        _visit(node, found)
    return found.result


def _visit(node: Selector, found: _Collector) -> None:
    tag = node.root.tag.lower() if isinstance(node.root.tag, str) else ""
    if tag == "img":
        found.describe(found.add("images", best_img_source(node)), node)
    elif tag == "source":
        found.describe(found.add("images", largest_candidate(node.attrib.get("data-srcset")
                                                              or node.attrib.get("srcset"))), node)
    elif tag == "meta":
        found.add("images", node.attrib.get("content"))
    elif tag == "link":
        found.add("images", node.attrib.get("href"))
    elif tag == "style":
        found.add_all("images", css_background_urls(node.xpath("string()").get()))
    elif tag in ("a", "area"):
        found.describe(found.add_by_kind(node.attrib.get("href")), node)
    elif tag in ("embed", "iframe", "frame"):
        found.add_by_kind(node.attrib.get("src"), pdf_type=node.attrib.get("type", ""))
    elif tag == "object":
        found.add_by_kind(node.attrib.get("data"), pdf_type=node.attrib.get("type", ""))
    if "style" in node.attrib and tag != "style":
        found.add_all("images", css_background_urls(node.attrib["style"]))


def best_img_source(img: Selector) -> str | None:
    """One URL per <img>: the largest srcset candidate, else a lazy source, else ``src``.

    ``src`` counts as the 1x candidate (as in the HTML spec), so a lazy attribute always wins
    over a placeholder ``src`` (data: URI, 1x1 gif, spacer).
    """
    attrs = img.attrib
    for name in (*LAZY_SRCSET_ATTRS, "srcset"):
        best = largest_candidate(attrs.get(name))
        if best:
            return best
    for name in LAZY_SRC_ATTRS:
        if attrs.get(name, "").strip():
            return attrs[name]
    return attrs.get("src")


def parse_srcset(srcset: str | None) -> list[tuple[str, str]]:
    """Split a srcset into (url, descriptor) pairs; commas inside URLs are kept."""
    out: list[tuple[str, str]] = []
    text, pos = srcset or "", 0
    while pos < len(text):
        while pos < len(text) and (text[pos].isspace() or text[pos] == ","):
            pos += 1
        start = pos
        while pos < len(text) and not text[pos].isspace():
            pos += 1
        url = text[start:pos]
        if not url:
            break
        if url.endswith(","):
            out.append((url.rstrip(","), ""))
            continue
        start = pos
        while pos < len(text) and text[pos] != ",":
            pos += 1
        out.append((url, text[start:pos].strip()))
    return out


def largest_candidate(srcset: str | None) -> str | None:
    """The srcset candidate with the largest width (``w``) or density (``x``) descriptor."""
    best, best_key = None, (-1, -1.0)
    for url, descriptor in parse_srcset(srcset):
        key = _descriptor_key(descriptor)
        if key > best_key:
            best, best_key = url, key
    return best


def _descriptor_key(descriptor: str) -> tuple[int, float]:
    """Sort key: width descriptors rank above density ones; no descriptor means 1x."""
    for token in descriptor.split():
        try:
            if token.endswith("w"):
                return 1, float(token[:-1])
            if token.endswith("x"):
                return 0, float(token[:-1])
        except ValueError:
            continue
    return 0, 1.0


def css_background_urls(css: str | None) -> list[str]:
    """URLs in ``background`` / ``background-image`` declarations of a CSS text."""
    return [m.group(2) for decl in BACKGROUND_RE.findall(css or "")
            for m in CSS_URL_RE.finditer(decl)]


def url_kind(url: str) -> str:
    """``image``, ``pdf``, ``medical`` or ``page``, judged by the URL path's extension."""
    if is_medical_name(urlsplit(url).path):
        return "medical"
    ext = splitext(urlsplit(url).path.lower())[1]
    if ext in IMAGE_SUFFIXES:
        return "image"
    return "pdf" if ext in PDF_EXTENSIONS else "page"


def _base_url(sel: Selector, page_url: str) -> str:
    href = sel.xpath("//base/@href").get()
    return urljoin(page_url, strip_html5_whitespace(href)) if href else page_url


class _Collector:
    """Resolve, clean and de-duplicate URLs per kind, keeping first-seen order."""

    def __init__(self, base: str):
        self.base, self.result = base, PageLinks()
        self._seen: dict[str, set[str]] = {"images": set(), "pdfs": set(), "links": set(),
                                           "medical": set()}

    def add(self, kind: str, raw: str | None) -> str | None:
        """Record a URL of a kind; returns it when it is an image seen for the first time."""
        url = self.clean(raw)
        if kind == "images" and url and is_medical_name(urlsplit(url).path):
            kind = "medical"          # a DICOM/NIfTI file: rendered into rows, not one image
        if url and url not in self._seen[kind]:
            self._seen[kind].add(url)
            getattr(self.result, kind).append(url)
            return url if kind in ("images", "medical") else None
        return None

    def describe(self, url: str | None, node: Selector) -> None:
        """Keep the text and the figure licence of an image's first occurrence."""
        if url:
            self.result.texts[url] = image_text(node)
            if (license := figure_license(figure_of(node.root), self.base)) is not None:
                self.result.licenses[url] = license

    def add_all(self, kind: str, raws: list[str]) -> None:
        for raw in raws:
            self.add(kind, raw)

    def add_by_kind(self, raw: str | None, pdf_type: str = "") -> str | None:
        url = self.clean(raw)
        if not url:
            return None
        kind = "pdf" if "pdf" in pdf_type.lower() else url_kind(url)
        return self.add({"image": "images", "pdf": "pdfs", "page": "links", "medical": "medical"}[kind], url)

    def clean(self, raw: str | None) -> str | None:
        """Absolute http(s) URL without fragment, or None (data:, javascript:, mailto: ...)."""
        raw = strip_html5_whitespace(raw or "")
        if not raw or raw.lower().startswith(("data:", "javascript:", "mailto:", "tel:", "about:")):
            return None
        url = urldefrag(safe_url_string(urljoin(self.base, raw)))[0]
        return url if urlsplit(url).scheme in FOLLOW_SCHEMES else None
