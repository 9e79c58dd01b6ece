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
