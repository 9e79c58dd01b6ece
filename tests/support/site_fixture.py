"""Generate the fixture web site the crawl tests run against: every markup kind, PDFs, bad inputs.

``build_site(root, base, other)`` writes the files and returns a ``Site`` that says what a crawl
from ``base + "/"`` must produce: one expected row per image occurrence, the bytes behind each
HTML image, the PDFs' expected images, and the paths that must never be requested.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pymupdf
from PIL import Image

SAMPLE_DATA = Path(matplotlib.get_data_path()) / "sample_data"


@dataclass(frozen=True)
class Expected:
    """What one row must say."""

    status: str                 # ok | skipped | error
    reason: str = ""            # the row's error column
    source_type: str = "html"
    fmt: str = ""               # Pillow format for ok rows


@dataclass
class Site:
    """The generated site and what a crawl of it must find."""

    root: Path
    base: str                                   # allowed host, e.g. http://127.0.0.1:PORT
    other: str                                  # second host (CDN / offsite), http://localhost:PORT
    rows: dict[tuple[str, str], Expected] = field(default_factory=dict)   # (image_url, source_url)
    bodies: dict[str, bytes] = field(default_factory=dict)               # image_url -> served bytes
    pdf_images: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # pdf -> (page, fmt)
    content_types: dict[str, str] = field(default_factory=dict)          # path -> Content-Type
    slow: set[str] = field(default_factory=set)                          # paths that never answer in time
    never_requested: list[str] = field(default_factory=list)             # paths a crawl must not fetch

    def url(self, path: str, host: str | None = None) -> str:
        return f"{host or self.base}/{path.lstrip('/')}"

    def write(self, path: str, data: bytes | str) -> None:
        target = self.root / path.split("?")[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)

    def image(self, path: str, data: bytes, page: str, expected: Expected, host: str | None = None) -> str:
        """Serve an image and expect one row for it on ``page``."""
        self.write(path, data)
        url = self.url(path, host)
        self.bodies[url] = data
        self.rows[(url, self.url(page))] = expected
        return url

    def expect(self, path: str, page: str, expected: Expected, host: str | None = None) -> str:
        url = self.url(path, host)
        self.rows[(url, self.url(page))] = expected
        return url


# ---- image and PDF makers ---------------------------------------------------------------

def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(w: int, h: int, seed: int) -> Image.Image:
    """A smooth, photo-like RGB image (gradients plus noise), distinct per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255], -1)
    arr = (base + rng.normal(0, 18, (h, w, 3)) + rng.integers(0, 80, 3)).clip(0, 255)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def sample(name: str) -> bytes:
    return (SAMPLE_DATA / name).read_bytes()


def mri_png16() -> bytes:
    """matplotlib's sample MRI slice (real 256x256 16-bit data) as a 16-bit PNG."""
    raw = gzip.decompress(sample("s1045.ima.gz"))
    arr = np.frombuffer(raw, ">u2").reshape(256, 256).astype(np.uint16) * 256
    return encode(Image.fromarray(arr), "PNG")


def bomb_png(side: int = 40000) -> bytes:
    """A valid, tiny PNG whose header claims side x side pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def animated_gif() -> bytes:
    frames = [photo(90, 90, 40 + i).convert("P") for i in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def pdf_with(images: list[list[bytes | int]]) -> tuple[bytes, dict[int, int]]:
    """A PDF with one page per list entry; an int entry re-uses the image inserted under that key."""
    doc = pymupdf.open()
    xrefs: dict[int, int] = {}
    for page_images in images:
        page = doc.new_page()
        for i, img in enumerate(page_images):
            rect = pymupdf.Rect(20 + 120 * i, 20, 130 + 120 * i, 130)
            if isinstance(img, int):
                page.insert_image(rect, xref=xrefs[img])
            else:
                xrefs[len(xrefs)] = page.insert_image(rect, stream=img)
    data = doc.tobytes(garbage=0)
    doc.close()
    return data, xrefs


def encrypted_pdf(data: bytes) -> bytes:
    doc = pymupdf.open(stream=data, filetype="pdf")
    out = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="user", owner_pw="owner")
    doc.close()
    return out


def page(title: str, body: str, head: str = "") -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>{head}</head>"
            f"<body><h1>{title}</h1>{body}</body></html>")


# ---- the site ------------------------------------------------------------------------------

OK = {fmt: Expected("ok", fmt=fmt) for fmt in ("JPEG", "PNG", "GIF", "WEBP")}
HUGE_BYTES = 2 * 1024 * 1024      # over the DOWNLOAD_MAXSIZE the crawl tests set
PIXEL_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def build_site(root: Path, base: str, other: str) -> Site:
    """Write every page, image and PDF under ``root``; return what a crawl must find."""
    site = Site(root, base.rstrip("/"), other.rstrip("/"))
    site.write("robots.txt", "User-agent: *\nDisallow: /private/\n")
    grace = sample("grace_hopper.jpg")
    _index(site, grace)
    _markup(site)
    _bad_inputs(site)
    _pdfs(site, grace)
    return site


def _index(site: Site, grace: bytes) -> None:
    site.image("img/grace_hopper.jpg", grace, "index.html", OK["JPEG"])
    site.expect("img/grace_hopper.jpg", "", OK["JPEG"])                     # the seed "/" is index.html
    site.expect("img/grace_hopper.jpg", "loop-b.html", OK["JPEG"])          # same URL again
    site.image("img/copy-of-grace.jpg", grace, "loop-b.html", OK["JPEG"])   # same bytes, new URL
    offsite = site.url("offsite.html", site.other)
    links = ["markup.html", "markup.html#section", "bad.html", "pdfs.html", "loop-a.html",
             "index.html#top", "private/secret.html", offsite, "mailto:someone@example.org"]
    body = "".join(f"<a href='{href}'>{href}</a> " for href in links)
    site.write("index.html", page("Fixture site", body + "<img src='img/grace_hopper.jpg' alt='Grace'>"))
    site.write("index.htm", page("Never linked", "<img src='img/never.png'>"))
    site.write("loop-a.html", page("Loop A", "<a href='loop-b.html'>B</a> <a href='loop-a.html#x'>self</a>"
                                   " <a href='index.html'>home</a>"))
    site.write("loop-b.html", page("Loop B", "<a href='loop-a.html#top'>A</a> <a href='/index.html'>home</a>"
                                   "<img src='img/grace_hopper.jpg'><img src='img/copy-of-grace.jpg'>"))
    site.write("private/secret.html", page("Secret", "<img src='secret.png'>"))
    site.write("private/secret.png", encode(photo(100, 100, 99), "PNG"))
    site.write("offsite.html", page("Offsite", "<img src='img/offsite-only.png'>"))
    site.write("img/offsite-only.png", encode(photo(100, 100, 98), "PNG"))
    site.never_requested += ["/private/secret.html", "/private/secret.png", "/offsite.html",
                             "/img/offsite-only.png", "/index.htm"]


def _markup(site: Site) -> None:
    p = "markup.html"
    png = lambda seed, w=120, h=100: encode(photo(w, h, seed), "PNG")  # noqa: E731
    jpg = lambda seed, w=120, h=100: encode(photo(w, h, seed), "JPEG", quality=90)  # noqa: E731
    site.image("img/plain.png", png(1), p, OK["PNG"])
    site.write("img/small-400.jpg", jpg(2))
    site.image("img/large-800.jpg", jpg(3, 160, 120), p, OK["JPEG"])
    site.write("img/x1.png", png(4))
    site.image("img/x2.png", png(5, 200, 160), p, OK["PNG"])
    site.image("img/lazy.jpg", jpg(6), p, OK["JPEG"])
    site.write("img/spacer.gif", encode(Image.new("P", (1, 1)), "GIF"))
    site.write("img/lazyset-300.jpg", jpg(7))
    site.image("img/lazyset-900.jpg", jpg(8, 180, 120), p, OK["JPEG"])
    site.write("img/blank.gif", encode(Image.new("P", (1, 1)), "GIF"))
    site.image("img/lazy2.png", png(9), p, OK["PNG"])
    site.image("img/pic.webp", encode(photo(120, 90, 10), "WEBP"), p, OK["WEBP"])
    site.image("img/pic.jpg", jpg(11), p, OK["JPEG"])
    site.image("img/bg.png", png(12), p, OK["PNG"])
    site.image("img/hero.jpg", jpg(13), p, OK["JPEG"])
    site.image("img/linked.jpg", jpg(14), p, OK["JPEG"])
    site.image("img/og.png", png(15), p, OK["PNG"])
    site.image("cdn/cdn.jpg", jpg(16), p, OK["JPEG"], host=site.other)
    site.image("img/mri.png", mri_png16(), p, OK["PNG"])                # real 16-bit medical image
    site.image("img/logo2.png", sample("logo2.png"), p, OK["PNG"])       # real RGBA logo
    site.image("photo?id=5", jpg(17), p, OK["JPEG"])                     # image behind a page link
    site.content_types["/photo"] = "image/jpeg"
    site.never_requested += ["/img/small-400.jpg", "/img/x1.png", "/img/spacer.gif",
                             "/img/lazyset-300.jpg", "/img/blank.gif"]
    head = ("<meta property='og:image' content='img/og.png'>"
            "<style>.hero { background: #000 url(img/hero.jpg) no-repeat; }</style>")
    body = f"""
      <a id="section"></a>
      <img src="img/plain.png" alt="plain">
      <img src="img/small-400.jpg" srcset="img/small-400.jpg 400w, img/large-800.jpg 800w">
      <img srcset="img/x1.png 1x, img/x2.png 2x">
      <img src="{PIXEL_GIF}" data-src="img/lazy.jpg">
      <img src="img/spacer.gif" data-srcset="img/lazyset-300.jpg 300w, img/lazyset-900.jpg 900w">
      <img src="img/blank.gif" data-lazy-src="img/lazy2.png">
      <picture><source srcset="img/pic.webp" type="image/webp"><img src="img/pic.jpg"></picture>
      <div class="hero" style="background-image: url('img/bg.png'); height: 10px"></div>
      <a href="img/linked.jpg">full size</a> <a href="photo?id=5">photo</a>
      <img src="{site.url('cdn/cdn.jpg', site.other)}"> <img src="img/mri.png"> <img src="img/logo2.png">
      <a href="index.html#top">home</a> <a href="markup.html">self</a>"""
    site.write(p, page("Every markup kind", body, head))


def _bad_inputs(site: Site) -> None:
    p = "bad.html"
    grace = sample("grace_hopper.jpg")
    site.image("bad/truncated.jpg", grace[: len(grace) // 2], p, Expected("error", "truncated"))
    site.image("bad/empty.jpg", b"", p, Expected("error", "empty"))
    site.image("bad/text.jpg", b"this is plain text, not a JPEG\n" * 20, p,
               Expected("error", "not_an_image"))
    site.image("bad/vector.svg", b"<svg xmlns='http://www.w3.org/2000/svg' width='100' height='100'>"
               b"<circle cx='50' cy='50' r='40'/></svg>", p, Expected("skipped", "svg_not_supported"))
    site.expect("bad/missing.png", p, Expected("error", "http_404"))
    site.image("bad/slow.jpg", encode(photo(100, 100, 20), "JPEG"), p, Expected("error", "timeout"))
    site.slow.add("/bad/slow.jpg")
    site.image("bad/bomb.png", bomb_png(), p, Expected("error", "decompression_bomb"))
    site.image("bad/tiny.png", encode(photo(16, 16, 21), "PNG"), p, Expected("skipped", "too_small"))
    site.image("bad/huge.jpg", b"\xff\xd8\xff" + bytes(HUGE_BYTES), p, Expected("error", "too_large"))
    site.image("bad/cmyk.jpg", encode(photo(100, 100, 22).convert("CMYK"), "JPEG"), p, OK["JPEG"])
    site.image("bad/anim.gif", animated_gif(), p, OK["GIF"])
    site.expect("private/hidden.png", p, Expected("skipped", "robots_txt"))
    site.write("private/hidden.png", encode(photo(100, 100, 23), "PNG"))
    site.never_requested.append("/private/hidden.png")
    imgs = ["truncated.jpg", "empty.jpg", "text.jpg", "vector.svg", "missing.png", "slow.jpg",
            "bomb.png", "tiny.png", "huge.jpg", "cmyk.jpg", "anim.gif", "../private/hidden.png"]
    site.write(p, page("Bad inputs", "".join(f"<img src='bad/{name}'>" for name in imgs)))


def _pdfs(site: Site, grace: bytes) -> None:
    p = "pdfs.html"
    rgba = Image.fromarray(np.dstack([np.asarray(photo(100, 100, 30)),
                                      np.tile(np.linspace(0, 255, 100, dtype=np.uint8), (100, 1))]),
                           "RGBA")
    reused = encode(photo(110, 90, 31), "JPEG")
    cmyk = encode(photo(100, 80, 32).convert("CMYK"), "JPEG")
    gray = encode(photo(110, 70, 33).convert("L"), "PNG")
    # pages: 1 grace + reused, 2 PNG with alpha (SMask), 3 CMYK + reused, 4 grayscale, 5 reused
    report, _ = pdf_with([[grace, reused], [encode(rgba, "PNG")], [cmyk, 1], [gray], [1]])
    _pdf(site, "docs/report.pdf", report, [(1, "JPEG"), (1, "JPEG"), (2, "PNG"), (3, "PNG"), (4, "PNG")])
    single = lambda seed: pdf_with([[encode(photo(120, 120, seed), "JPEG")]])[0]  # noqa: E731
    _pdf(site, "docs/embedded.pdf", single(34), [(1, "JPEG")])
    _pdf(site, "docs/framed.pdf", single(35), [(1, "JPEG")])
    _pdf(site, "docs/view", single(36), [(1, "JPEG")])              # no extension, typed PDF
    site.content_types["/docs/view"] = "application/pdf"
    _pdf(site, "docs/viewer?id=7", single(37), [(1, "JPEG")])       # plain link, typed PDF
    site.content_types["/docs/viewer"] = "application/pdf"
    site.write("docs/encrypted.pdf", encrypted_pdf(single(38)))
    site.rows[(site.url("docs/encrypted.pdf"),) * 2] = Expected("error", "pdf_encrypted", "pdf")
    site.write("docs/broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage\n%%EOF\n")
    site.rows[(site.url("docs/broken.pdf"),) * 2] = Expected("error", "pdf_malformed", "pdf")
    site.rows[(site.url("docs/missing.pdf"),) * 2] = Expected("error", "http_404", "pdf")
    site.write("docs/text-only.pdf", pdf_with([[], []])[0])
    site.rows[(site.url("docs/text-only.pdf"),) * 2] = Expected("skipped", "no_images", "pdf")
    body = """<a href="docs/report.pdf">report</a> <embed src="docs/embedded.pdf" type="application/pdf">
      <iframe src="docs/framed.pdf"></iframe> <object data="docs/view" type="application/pdf"></object>
      <a href="docs/viewer?id=7">viewer</a> <a href="docs/encrypted.pdf">locked</a>
      <a href="docs/broken.pdf">broken</a> <a href="docs/missing.pdf">gone</a>
      <a href="docs/text-only.pdf">minutes</a>"""
    site.write(p, page("PDFs", body))


def _pdf(site: Site, path: str, data: bytes, images: list[tuple[int, str]]) -> None:
    site.write(path, data)
    site.pdf_images[site.url(path)] = images
