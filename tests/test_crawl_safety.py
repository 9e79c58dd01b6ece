"""A crawl against a hostile site on loopback: internal addresses, bombs, loops, traps, SIGTERM.

127.0.0.1 is the site the user names; a second server on 127.0.0.2 stands in for an internal
service (169.254.169.254, a 10.x host) that the site's pages point at and must never be asked.
"""

from __future__ import annotations

import functools
import io
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import pytest
from PIL import Image

from medcrawl.oneoff.localserver import serving
from tests.support.pdf_bombs import flate_bomb
from tests.support.scale_helpers import read_jsonl, run_crawl, start_crawl, stats_from_log, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]   # slow: crawls


def png(seed: int, size: int = 96) -> bytes:
    img = Image.effect_noise((size, size), 40 + seed).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


class HostileHandler(BaseHTTPRequestHandler):
    """Pages and images of the hostile site; every request is recorded per server."""

    protocol_version = "HTTP/1.1"
    pages: dict[str, str] = {}
    hits: list[str] = []
    other = ""                               # base URL of the 127.0.0.2 server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        path = self.path
        if path in self.pages:
            other_port, port = self.other.rsplit(":", 1)[-1], self.server.server_address[1]
            html = self.pages[path].format(other=self.other, other_port=other_port, port=port)
            return self.send(200, html.encode(), "text/html")
        if path == "/bomb.pdf":
            return self.send(200, bomb(), "application/pdf")
        if path.startswith("/img/"):
            return self.send(200, IMAGE, "image/png")
        if path == "/to-internal.png":
            return self.redirect(f"{self.other}/img/internal-redirected.png")
        if path == "/loop.png":
            return self.redirect("/loop.png")
        if path == "/huge.png":
            return self.stream(2 * 1024 * 1024)
        if (m := re.fullmatch(r"/page/(\d+)", path)):
            n = int(m[1])
            return self.send(200, page(f"<a href='/page/{n + 1}'>next</a><a href='/page/{n + 2}'>skip</a>"))
        if (m := re.fullmatch(r"/calendar\?d=(-?\d+)", path)):
            n = int(m[1])
            return self.send(200, page(f"<a href='?d={n - 1}'>prev</a><a href='?d={n + 1}'>next</a>"))
        if path == "/robots.txt":
            return self.send(404, b"", "text/plain")
        return self.send(404, b"not found", "text/plain")

    def send(self, status: int, body: bytes, ctype: str = "text/html") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def stream(self, size: int) -> None:
        """A chunked body with no Content-Length: only counting the bytes can find it too large."""
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"\0" * 65536
        for _ in range(size // len(chunk)):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


def page(body: str) -> bytes:
    return f"<!doctype html><html><body>{body}</body></html>".encode()


IMAGE = png(1)


@functools.cache
def bomb() -> bytes:
    """A 0.9 MB PDF whose one image is 30000x30000 grey (900 MB once decoded)."""
    return flate_bomb()


@dataclass
class HostileCrawl:
    """One crawl of the hostile site: its rows and log, and what each server was asked."""

    base: str
    other: str
    rows: list[dict]
    log: str
    site_hits: list[str]
    internal_hits: list[str]

    def row(self, suffix: str) -> dict:
        [row] = [r for r in self.rows if r["image_url"].endswith(suffix)]
        return row


INDEX = """<!doctype html><html><body>
<img src='{other}/img/internal.png'>
<img src='http://[::ffff:127.0.0.2]:{other_port}/img/mapped.png'>
<img src='http://2130706434:{other_port}/img/decimal.png'>
<img src='/to-internal.png'>
<img src='http://localhost:{port}/img/cdn.png'>
<img src='/loop.png'>
<img src='/huge.png'>
<img src='/img/ok.png'>
<a href='/bomb.pdf'>report</a>
</body></html>"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Iterator[HostileCrawl]:
    work = tmp_path_factory.mktemp("hostile")
    internal = type("Internal", (HostileHandler,), {"hits": [], "pages": {}})
    site = type("Site", (HostileHandler,), {"hits": [], "pages": {"/": INDEX}})
    with serving(internal, "127.0.0.2") as other, serving(site) as base:
        site.other = other
        site.pages["/creds.html"] = f"<img src='http://user:secret@{base[7:]}/img/creds.png'>"
        proc = run_crawl(base, work, "-s", f"IMAGES_STORE={work}/store", "-o", f"{work}/rows.jsonl",
                         "-s", "DOWNLOAD_MAXSIZE=1048576", "-a", f"start_urls={base}/,{base}/creds.html",
                         timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield HostileCrawl(base, other, read_jsonl(work / "rows.jsonl"), proc.stderr,
                           list(site.hits), list(internal.hits))


def test_pdf_image_over_the_pixel_limit_is_refused_undecoded(hostile):
    peak = stats_from_log(hostile.log)["memusage/max"]
    assert peak < 1200 * 2**20, f"crawl peak RSS {peak / 2**20:.0f} MB"    # 255 MB; decoding: 1.9 GB+
    [row] = [r for r in hostile.rows if r["source_url"].endswith("/bomb.pdf")]
    assert (row["status"], row["error"], row["width"], row["height"]) == \
        ("error", "decompression_bomb", 30000, 30000)


def test_internal_addresses_are_refused_before_any_connection(hostile):
    """Literal, IPv4-mapped, decimal and redirected forms of 127.0.0.2; the named host stays allowed."""
    assert hostile.internal_hits == []
    for suffix in ("/img/internal.png", "/img/mapped.png", "/img/decimal.png", "/to-internal.png"):
        row = hostile.row(suffix)
        assert (row["status"], row["error"]) == ("error", "private_address"), row
    assert hostile.row("/img/ok.png")["status"] == "ok"
    assert hostile.row("/img/cdn.png")["status"] == "ok"      # localhost: the seed host's address


def test_crawl_traps_are_cut_with_default_settings(tmp_path):
    """An endless /page/N generator and a ?d=N calendar end the crawl on their own, and say so."""
    site = type("Traps", (HostileHandler,), {"hits": [], "pages": {}})
    with serving(site) as base:
        proc = run_crawl(base, tmp_path, "-s", f"IMAGES_STORE={tmp_path}/store",
                         "-a", f"start_urls={base}/page/1,{base}/calendar?d=0", timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pages = [p for p in site.hits if p.startswith("/page/")]
    days = [p for p in site.hits if p.startswith("/calendar")]
    assert 50 <= len(pages) <= 110 and 80 <= len(days) <= 110, (len(pages), len(days))
    assert "MEDCRAWL_MAX_PATTERN_CHAIN=50 stopped" in proc.stderr
    assert stats_from_log(proc.stderr)["medcrawl/trap/pattern_chain"] >= 2


def test_body_cut_at_download_maxsize_is_too_large(hostile):
    row = hostile.row("/huge.png")
    assert (row["status"], row["error"]) == ("error", "too_large")


def test_image_redirect_loop_is_named(hostile):
    row = hostile.row("/loop.png")
    assert (row["status"], row["error"]) == ("error", "redirect_loop")
    assert hostile.site_hits.count("/loop.png") == 1


def test_credentials_never_reach_the_rows(hostile):
    assert hostile.row("/img/creds.png")["image_url"] == f"{hostile.base}/img/creds.png"
    assert not any("secret" in str(value) for row in hostile.rows for value in row.values())


class BrokenRobots(HostileHandler):
    """A site whose robots.txt answers 503: it may forbid anything, so nothing is crawled."""

    hits: list[str] = []
    pages = {"/": INDEX}

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/robots.txt":
            self.hits.append(self.path)
            return self.send(503, b"try later", "text/plain")
        return super().do_GET()


def test_unreachable_robots_txt_forbids_the_host(tmp_path):
    with serving(BrokenRobots) as base:
        proc = run_crawl(base, tmp_path, "-s", f"IMAGES_STORE={tmp_path}/store", "-s", "RETRY_TIMES=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert BrokenRobots.hits == ["/robots.txt", "/robots.txt"]              # one retry, then nothing
    stats = stats_from_log(proc.stderr)
    assert stats["medcrawl/robots_unreachable"] == 1 and stats["medcrawl/page_error/robots_txt"] == 1


class ManyImages(BaseHTTPRequestHandler):
    """One page showing 20,000 images (all the same small PNG); image requests are counted."""

    protocol_version = "HTTP/1.1"
    images: list[float] = []

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/img/"):
            self.images.append(time.monotonic())
            body, ctype = IMAGE, "image/png"
        elif self.path == "/":
            body, ctype = page("".join(f"<img src='/img/{n}.png'>" for n in range(20_000))), "text/html"
        else:
            body, ctype = b"", "text/plain"
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


def test_first_sigterm_stops_taking_rows_and_finishes_in_flight(tmp_path):
    with serving(ManyImages) as base:
        proc = start_crawl(base, tmp_path, "-s", f"IMAGES_STORE={tmp_path}/store",
                           "-o", f"{tmp_path}/rows.jsonl")
        try:
            wait_for(lambda: len(ManyImages.images) >= 300 or proc.poll() is not None, 180,
                     what="300 image requests")
            assert proc.poll() is None, "the crawl ended before the signal"
            proc.send_signal(signal.SIGTERM)
            sent, before = time.monotonic(), len(ManyImages.images)
            proc.wait(timeout=90)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    log = (tmp_path / "crawl.log").read_text()
    after = sum(1 for t in ManyImages.images if t > sent)
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert after < 500, f"{after} images requested after SIGTERM ({before} before), exit after {took:.0f} s"
    assert "Closing spider (shutdown)" in log and "Shutting down: the rest of" in log
    assert len(rows) >= before - 200                  # what was in flight was finished and written
