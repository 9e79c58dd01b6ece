"""A realistic site (100 pages, ~800 images, 15 PDFs): the crawl finds >= 99% of its images.

The site mixes every markup kind a real site uses (plain `<img>`, `srcset`, lazy attributes with
placeholders, `<picture>`, CSS backgrounds, links to images, `og:image`), images on a CDN host,
PDFs linked four ways, a robots.txt-forbidden section and an off-site section that must never be
fetched, and a few bad images that must be reported.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from tests.support.site_fixture import encode, page, pdf_with, photo
from tests.support.crawls import scrapy_crawl, REPO

pytestmark = pytest.mark.slow   # a crawl

PAGES, SECTIONS, PDFS = 100, 5, 15
PLACEHOLDER = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


class RealisticSite:
    """Writes the site and records what a crawl must find and must never request."""

    def __init__(self, root: Path, base: str, cdn: str):
        self.root, self.base, self.cdn = root, base, cdn
        self.images: set[str] = set()                  # image URLs a crawl must find
        self.pdf_images: dict[str, int] = {}           # PDF URL -> distinct embedded images
        self.bad: dict[str, str] = {}                  # image URL -> reason
        self.forbidden: list[str] = []                 # paths never to request (robots / offsite)
        self.rng = random.Random(7)
        self.seed = 0

    def write(self, path: str, data: bytes | str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)

    def new_image(self, name: str, host: str | None = None, found: bool = True) -> str:
        """Write a distinct small photo; return its URL (relative for this host, absolute for the CDN)."""
        self.seed += 1
        fmt = "PNG" if self.seed % 4 == 0 else "JPEG"
        path = f"img/{name}.{fmt.lower().replace('jpeg', 'jpg')}"
        self.write(path, encode(photo(72 + self.seed % 50, 64 + self.seed % 40, self.seed), fmt))
        url = f"{host or self.base}/{path}"
        if found:
            self.images.add(url)
        return url if host else f"/{path}"

    def snippet(self, kind: int, n: str) -> tuple[str, str]:
        """(head, body) markup for one image of the given kind."""
        img = lambda suffix="", **kw: self.new_image(f"{n}{suffix}", **kw)  # noqa: E731
        if kind == 0:
            return "", f"<img src='{img()}' alt='a'>"
        if kind == 1:
            small = img("-320", found=False)
            return "", f"<img src='{small}' srcset='{small} 320w, {img('-1200')} 1200w' sizes='50vw'>"
        if kind == 2:
            return "", f"<img src='{PLACEHOLDER}' data-src='{img()}' class='lazyload'>"
        if kind == 3:
            return "", f"<img src='/img/spacer.gif' data-srcset='{img('-1x', found=False)} 1x, {img('-2x')} 2x'>"
        if kind == 4:
            return "", (f"<picture><source type='image/webp' srcset='{img('-pic')}'>"
                        f"<img src='{img('-fallback')}'></picture>")
        if kind == 5:
            return "", f"<div class='hero' style=\"background-image: url('{img()}')\"></div>"
        if kind == 6:
            return "", f"<a href='{img('-full')}'>full size</a>"
        if kind == 7:
            return f"<meta property='og:image' content='{img(host=self.base)}'>", ""
        return "", f"<img src='{img(host=self.cdn)}' loading='lazy'>"      # CDN image

    def build(self) -> None:
        self.write("robots.txt", "User-agent: *\nDisallow: /private/\n")
        self.write("img/spacer.gif", encode(photo(1, 1, 0).convert("P"), "GIF"))
        pdf_pages = self.rng.sample(range(1, PAGES), PDFS)
        for i in range(PAGES):
            self.write(self.page_path(i), self.article(i, pdf_pages.index(i) if i in pdf_pages else None))
        self.write("private/report.html", page("Private", "<img src='/private/scan.png'>"))
        self.write("private/scan.png", encode(photo(90, 90, 9999), "PNG"))
        self.write("elsewhere.html", page("Off site", "<img src='/img/elsewhere-only.png'>"))
        self.write("img/elsewhere-only.png", encode(photo(90, 90, 9998), "PNG"))
        self.forbidden += ["/private/report.html", "/private/scan.png", "/elsewhere.html",
                           "/img/elsewhere-only.png"]

    def page_path(self, i: int) -> str:
        return "index.html" if i == 0 else f"s{i % SECTIONS}/article-{i:03d}.html"

    def article(self, i: int, pdf: int | None) -> str:
        """One page: 8 images of mixed kinds, links to neighbours, forbidden and off-site links."""
        heads, bodies = [], []
        for k in range(8):
            head, body = self.snippet((i + k) % 9, f"p{i:03d}-{k}")
            heads.append(head)
            bodies.append(body)
        if i % 25 == 3:
            bodies.append(f"<img src='/img/missing-{i}.jpg'>")
            self.bad[f"{self.base}/img/missing-{i}.jpg"] = "http_404"
        if i % 25 == 7:
            whole = encode(photo(100, 100, i), "JPEG")
            self.write(f"img/truncated-{i}.jpg", whole[: len(whole) // 2])
            bodies.append(f"<img src='/img/truncated-{i}.jpg'>")
            self.bad[f"{self.base}/img/truncated-{i}.jpg"] = "truncated"
        if pdf is not None:
            bodies.append(self.pdf_link(pdf))
        links = [self.page_path((i * 7 + j) % PAGES) for j in (1, 2, 3)] + [self.page_path(0) + "#top"]
        links += ["/private/report.html", f"{self.cdn}/elsewhere.html"]
        nav = "".join(f"<a href='/{href.lstrip('/')}'>link</a> " if not href.startswith("http")
                      else f"<a href='{href}'>away</a> " for href in links)
        return page(f"Article {i}", nav + "".join(bodies), "".join(heads))

    def pdf_link(self, n: int) -> str:
        """A PDF of 2-4 pages with 1-3 images each (one re-used), linked one of four ways."""
        images: list[list[bytes | int]] = []
        for _ in range(self.rng.randint(2, 4)):
            page_images: list[bytes | int] = []
            for k in range(self.rng.randint(1, 3)):
                self.seed += 1
                page_images.append(encode(photo(150, 120, self.seed), "JPEG" if k % 2 == 0 else "PNG"))
            images.append(page_images)
        images[-1].append(0)                                             # the first image again
        data, xrefs = pdf_with(images)
        path = f"docs/paper-{n:02d}.pdf"
        self.write(path, data)
        self.pdf_images[f"{self.base}/{path}"] = len(xrefs)
        return [f"<a href='/{path}'>PDF</a>", f"<embed src='/{path}' type='application/pdf'>",
                f"<iframe src='/{path}'></iframe>", f"<object data='/{path}' type='application/pdf'></object>"][n % 4]


@pytest.fixture(scope="module")
def harvest(tmp_path_factory, serve):
    root = tmp_path_factory.mktemp("realistic")
    with serve(root) as (base, state):
        site = RealisticSite(root, base, base.replace("127.0.0.1", "localhost"))
        site.build()
        out = tmp_path_factory.mktemp("harvest")
        proc = scrapy_crawl(REPO, "-a", f"start_urls={base}/", "-O", f"{out}/rows.csv",
                            "-s", f"IMAGES_STORE={out}/images", "-s", "AUTOTHROTTLE_ENABLED=False",
                            "-s", "CONCURRENT_REQUESTS=32", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=32",
                            "-s", "RETRY_TIMES=0", "-s", f"LOG_FILE={out}/crawl.log", timeout=600)
        assert proc.returncode == 0, (out / "crawl.log").read_text()[-4000:]
        with open(out / "rows.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        yield site, rows, list(state.requests)


def test_site_is_realistic_in_size(harvest):
    site, _, _ = harvest
    assert len(list(site.root.rglob("*.html"))) >= PAGES
    assert len(site.images) >= 800 and len(site.pdf_images) == PDFS


def test_at_least_99_percent_of_images_found(harvest):
    site, rows, _ = harvest
    found = {r["image_url"] for r in rows if r["source_type"] == "html" and r["status"] == "ok"}
    missed = sorted(site.images - found)
    recall = 1 - len(missed) / len(site.images)
    print(f"page images found: {len(site.images) - len(missed)}/{len(site.images)} ({recall:.2%})")
    assert recall >= 0.99, missed[:20]
    per_pdf: dict[str, int] = {}
    for r in rows:
        if r["source_type"] == "pdf" and r["status"] == "ok":
            per_pdf[r["source_url"]] = per_pdf.get(r["source_url"], 0) + 1
    assert per_pdf == site.pdf_images


def test_placeholders_and_small_candidates_are_not_images(harvest):
    _, rows, _ = harvest
    urls = {r["image_url"] for r in rows}
    assert not any("spacer" in u or u.startswith("data:") or "-320." in u or "-1x." in u for u in urls)


def test_bad_images_are_reported(harvest):
    site, rows, _ = harvest
    errors = {r["image_url"]: r["error"] for r in rows if r["status"] == "error"}
    assert {url: errors.get(url) for url in site.bad} == site.bad


def test_robots_and_offsite_pages_never_fetched(harvest):
    site, _, requests = harvest
    fetched = {path.split("?", 1)[0] for _, path in requests}
    assert not fetched & set(site.forbidden)
    cdn_host = site.cdn.split("//", 1)[1]
    assert any(host == cdn_host for host, _ in requests), "CDN images must still be downloaded"
    assert all(path.startswith("/img/") or path == "/robots.txt" for host, path in requests if host == cdn_host)
