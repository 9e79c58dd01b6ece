"""The tests' local HTTP servers on 127.0.0.1: a served folder that records requests, routes in memory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

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
