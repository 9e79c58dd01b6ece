"""The web page under test: `medcrawl ui` in a subprocess on a free port, and Debian's Chromium to drive it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_ui(*args: str, log_path: Path, cwd: Path | None = None) -> Iterator[str]:
    """``medcrawl ui --port FREE ARGS`` until the block ends; yields its URL once it answers."""
    port = free_port()
    log = open(log_path, "w+")
    script = Path(sys.executable).with_name("medcrawl")
    proc = subprocess.Popen([str(script), "ui", "--port", str(port), *args], cwd=cwd,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, "medcrawl ui exited:\n" + _read(log)
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "medcrawl ui did not start:\n" + _read(log)
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _read(log) -> str:
    log.seek(0)
    return log.read()[-4000:]
