"""Limits of `medcrawl classify` and the web page against hostile servers and files (127.0.0.1 only)."""

from __future__ import annotations

import json
import os
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from medcrawl.oneoff.cli import main
from medcrawl.oneoff.localserver import serving
from tests.support.cli import classify

pytestmark = pytest.mark.timeout(120)


class Trickle(BaseHTTPRequestHandler):
    """Answers with a status line that never ends: one byte every 0.1 s for five minutes."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.wfile.write(b"HTTP/1.1 200 ")
        for _ in range(3000):
            self.wfile.write(b"0")
            self.wfile.flush()
            time.sleep(0.1)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def trickle():
    with serving(Trickle) as base:
        yield base


def test_cli_timeout_bounds_a_trickled_response(capsys, trickle):
    start = time.monotonic()
    code, rows, _ = classify(capsys, "--timeout", "2", "--allow-private-urls", f"{trickle}/a.png")
    assert [(r["status"], r["error"]) for r in rows] == [("error", "timeout")] and code == 2
    assert time.monotonic() - start < 30                   # model load included; the fetch: 2 s


def test_web_page_timeout_bounds_a_trickled_response(classifier, trickle, tmp_path):
    from medcrawl.oneoff.fetch import FetchLimits
    from medcrawl.oneoff.ui import ClassifyService, UiSettings

    service = ClassifyService(classifier, UiSettings(fetch=FetchLimits(timeout=1.5, allow_private=True)),
                              tmp_path)
    start = time.monotonic()
    result = service.run([f"{trickle}/a.png", f"{trickle}/b.png"])
    assert time.monotonic() - start < 10
    assert list(result.table["error"]) == ["timeout", "timeout"]


def png_bytes(seed: int, fmt: str = "PNG") -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.effect_noise((96, 96), 30 + seed).convert("RGB").save(buf, fmt)
    return buf.getvalue()


def test_table_escapes_control_characters_in_file_names(capsys, tmp_path):
    names = ["red\x1b[31mtext.png", "back\rwards.png", "bidi\u202egnp.png"]
    for n, name in enumerate(names):
        (tmp_path / name).write_bytes(png_bytes(n))
    assert main(["classify", "-q", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert "red\\x1b[31mtext.png" in out and "back\\rwards.png" in out and "bidi\\u202egnp.png" in out


def test_credentials_never_reach_the_rows(capsys):
    from tests.support.servers import serve_routes

    hits: list[str] = []
    with serve_routes({"/a.png": (png_bytes(1), "image/png")}, hits) as base:
        url = base.replace("http://", "http://user:secret@") + "/a.png"
        code, rows, err = classify(capsys, "--allow-private-urls", url)
    assert code == 0 and hits == ["/a.png"]
    assert [(r["image_url"], r["source_url"], r["status"]) for r in rows] == \
        [(f"{base}/a.png", f"{base}/a.png", "ok")]
    assert "secret" not in json.dumps(rows)


def test_folder_walk_reads_avif(capsys, tmp_path):
    (tmp_path / "scan.avif").write_bytes(png_bytes(2, "AVIF"))
    code, rows, _ = classify(capsys, tmp_path)
    assert [(Path(r["image_url"]).name, r["status"], r["format"]) for r in rows] == [("scan.avif", "ok", "AVIF")]


@pytest.fixture(scope="module")
def small_ui(tmp_path_factory):
    """`medcrawl ui` with a 1 MB request limit (files up to 2 MB each), on a free port."""
    import subprocess
    import sys
    import urllib.request

    from tests.support.scale_helpers import free_port, wait_for

    port, log = free_port(), tmp_path_factory.mktemp("ui") / "ui.log"
    script = Path(sys.executable).with_name("medcrawl")
    with open(log, "w") as out:
        proc = subprocess.Popen([str(script), "ui", "--port", str(port), "--max-request-size", "1MB",
                                 "--max-file-size", "2MB"], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            return True
        except OSError:
            return False
    try:
        wait_for(up, 100, interval=0.5, what="medcrawl ui")
        yield port, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def upload(port: int, size: int, chunked: bool = False) -> int:
    """POST one file of ``size`` bytes to the page's upload endpoint; the HTTP status."""
    import http.client

    boundary = "medcrawl-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + b"\0" * size + f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    try:
        if chunked:
            chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
            conn.request("POST", "/gradio_api/upload", body=chunks, headers=headers, encode_chunked=True)
        else:
            conn.request("POST", "/gradio_api/upload", body=body, headers=headers)
        return conn.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        return 413                      # refused while the body was still being sent
    finally:
        conn.close()


@pytest.mark.slow
def test_web_page_limits_the_size_of_one_request(small_ui):
    port = small_ui[0]
    assert upload(port, 100_000) == 200
    assert upload(port, 1_500_000) == 413               # under the per-file limit, over the request's
    assert upload(port, 1_500_000, chunked=True) == 413  # no Content-Length: counted as it comes


def test_web_page_decodes_each_upload_once(classifier, tmp_path, monkeypatch):
    """The gallery thumbnail comes from the labelling decode, not from a second one."""
    from PIL import Image

    from medcrawl.oneoff.ui import ClassifyService, UiSettings

    opened, real_open = [], Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **kw: opened.append(fp) or real_open(fp, *a, **kw))
    path = tmp_path / "upload.png"
    Image.effect_noise((1200, 900), 40).convert("RGB").save(path)
    (tmp_path / "out").mkdir()
    result = ClassifyService(classifier, UiSettings(), tmp_path / "out").run([str(path)], {})
    assert len(opened) == 1
    [(thumb, _)] = [entry[:2] for entry in result.gallery]
    assert max(thumb.size) == 256 and thumb.mode == "RGB"


@pytest.mark.slow
def test_web_page_says_where_it_is_and_nothing_about_share_links(small_ui):
    port, log = small_ui
    text = log.read_text()
    assert f"medcrawl: web page on http://127.0.0.1:{port}/" in text
    assert "share=True" not in text and "public link" not in text
