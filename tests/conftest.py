"""Shared fixtures: a local HTTP server for a folder, and the real classifier loaded once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
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
def serve_folder(folder: Path, state: ServerState | None = None) -> Iterator[tuple[str, ServerState]]:
    """Serve ``folder`` on 127.0.0.1 at a free port; yield (port-qualified base URL, state)."""
    state = state or ServerState()
    handler = partial(RecordingHandler, directory=str(folder), server_state=state)
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


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
