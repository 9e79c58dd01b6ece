"""Shared fixtures: a local HTTP server for a folder, and the real classifier loaded once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class RecordingHandler(SimpleHTTPRequestHandler):
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

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep test output quiet
        pass


class QuietServer(ThreadingHTTPServer):
    """A threading server that does not print client disconnects (timeouts are on purpose)."""

    daemon_threads = True
    request_queue_size = 128        # the default 5 drops connections under crawl concurrency

    def handle_error(self, request, client_address) -> None:
        pass


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
def _running(handler) -> Iterator[str]:
    """A QuietServer with ``handler`` on 127.0.0.1 at a free port; yield its base URL."""
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_folder(folder: Path, state: ServerState | None = None) -> Iterator[tuple[str, ServerState]]:
    """Serve ``folder`` on 127.0.0.1 at a free port; yield (port-qualified base URL, state)."""
    state = state or ServerState()
    with _running(partial(RecordingHandler, directory=str(folder), server_state=state)) as base:
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
    with _running(handler) as base:
        yield base


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path, ServerState]]:
    """A served empty folder for one test: (base URL, folder, request log)."""
    with serve_folder(tmp_path) as (base, state):
        yield base, tmp_path, state


@pytest.fixture(scope="session")
def classifier():
    """The committed model (models/medcrawl-v1, or $MEDCRAWL_MODEL), loaded once per session."""
    from medcrawl.classifier import Classifier

    return Classifier.load()


@pytest.fixture(scope="session")
def serve() -> Callable:
    """The serve_folder context manager, for tests that build their own site."""
    return serve_folder
