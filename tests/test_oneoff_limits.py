"""Limits of `medcrawl classify` and the web page against hostile servers and files (127.0.0.1 only)."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from medcrawl.oneoff.cli import main
from medcrawl.oneoff.localserver import serving

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


def classify(capsys, *args) -> tuple[int, list[dict], str]:
    """Run `medcrawl classify ARGS --format jsonl` in-process; (exit code, rows, stderr)."""
    code = main(["classify", "--format", "jsonl", "-q", *map(str, args)])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


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
    from conftest import serve_routes

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
