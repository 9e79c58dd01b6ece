"""Shared fixtures: the one local HTTP server (a folder, or routes in memory), and the real classifier loaded once."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from medcrawl.oneoff.localserver import QuietHandler, folder_handler, serving


class RecordingHandler(QuietHandler):
    """Serve a folder; record every request; honour per-path Content-Type and slow paths."""

    def __init__(self, *args, server_state: ServerState, **kwargs):
        self.state = server_state
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        self.state.requests.append((self.headers.get("Host", ""), self.path))
        if path in self.state.slow:
            time.sleep(self.state.slow_seconds)
        super().do_GET()

    def guess_type(self, path) -> str:
        request_path = self.path.split("?", 1)[0]
        return self.state.content_types.get(request_path) or super().guess_type(path)


class ServerState:
    """What a test server was asked for, and how it should answer."""

    def __init__(self, content_types: dict[str, str] | None = None, slow: set[str] | None = None,
                 slow_seconds: float = 6.0):
        self.content_types, self.slow = content_types or {}, slow or set()
        self.slow_seconds = slow_seconds
        self.requests: list[tuple[str, str]] = []

    def paths(self, host_prefix: str = "") -> list[str]:
        """Request paths (without query), optionally only those sent to one Host header."""
        return [p.split("?", 1)[0] for host, p in self.requests if host.startswith(host_prefix)]


@contextmanager
def serve_folder(folder: Path, state: ServerState | None = None) -> Iterator[tuple[str, ServerState]]:
    """Serve ``folder`` on 127.0.0.1 at a free port; yield (port-qualified base URL, state)."""
    state = state or ServerState()
    with serving(folder_handler(folder, RecordingHandler, server_state=state)) as base:
        yield base, state


class RoutesHandler(BaseHTTPRequestHandler):
    """Answer GETs from an in-memory table {path: (body, content type)}, 404 otherwise; record paths."""

    routes: dict[str, tuple[bytes, str]] = {}
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        body, ctype = self.routes.get(self.path, (b"not found", "text/plain"))
        self.send_response(200 if self.path in self.routes else 404)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep test output quiet
        pass


@contextmanager
def serve_routes(routes: dict[str, tuple[bytes, str]], hits: list[str] | None = None) -> Iterator[str]:
    """Serve ``routes`` on 127.0.0.1 at a free port (paths asked for go to ``hits``); yield the base URL."""
    handler = type("Routes", (RoutesHandler,), {"routes": routes, "hits": [] if hits is None else hits})
    with serving(handler) as base:
        yield base


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path, ServerState]]:
    """A served empty folder for one test: (base URL, folder, request log)."""
    with serve_folder(tmp_path) as (base, state):
        yield base, tmp_path, state


@pytest.fixture
def redis_url(tmp_path):
    """A throw-away redis-server on 127.0.0.1 (no persistence), killed at the end: (URL, client)."""
    import redis

    from scale_helpers import free_port, wait_for

    if shutil.which("redis-server") is None:
        pytest.skip("Debian package redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def up() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return proc.poll() is not None
    try:
        wait_for(up, 20, what="redis-server")
        assert proc.poll() is None, "redis-server did not start"
        yield url, client
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def classifier():
    """The committed model (models/medcrawl-v2, or $MEDCRAWL_MODEL), loaded once per session."""
    from medcrawl.config import model_location
    from medcrawl.model.classifier import Classifier

    return Classifier.load(*model_location())


@pytest.fixture(scope="session")
def modality_model(tmp_path_factory) -> Path:
    """A model directory with a modality head: the default model's, else one built for the session."""
    from modality_model import modality_model_dir

    return modality_model_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def one_output_model(tmp_path_factory) -> Path:
    """A model without a modality head (random weights, 64 px): what the product does with one."""
    from modality_model import build_one_output_model

    return build_one_output_model(tmp_path_factory.mktemp("one-output"))


@pytest.fixture(scope="session")
def serve() -> Callable:
    """The serve_folder context manager, for tests that build their own site."""
    return serve_folder


def corrupted_copy(model_dir: Path, dest: Path, filename: str) -> Path:
    """A copy of a model directory with one byte of one of its files flipped."""
    shutil.copytree(model_dir, dest)
    blob = bytearray((dest / filename).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (dest / filename).write_bytes(bytes(blob))
    return dest
