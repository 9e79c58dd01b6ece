"""A local HTTP server on 127.0.0.1 (free port, background thread): the demo's site, the benchmarks' and the tests'."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class QuietHandler(SimpleHTTPRequestHandler):
    """Static files from a folder, without a log line per request."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's signature
        pass


class LocalServer(ThreadingHTTPServer):
    """Threaded, with a deep listen backlog (crawl concurrency), quiet about clients that hang up."""

    daemon_threads = True
    request_queue_size = 512        # the default 5 stalls or drops connections under a crawl

    def handle_error(self, request, client_address) -> None:
        pass


def folder_handler(folder: str | os.PathLike, handler: type = QuietHandler, **kwargs) -> Callable:
    """A request handler serving ``folder`` (``kwargs`` go to the handler class)."""
    return partial(handler, directory=str(folder), **kwargs)


@contextmanager
def serving(handler: Callable[..., BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """Run a LocalServer with ``handler`` on ``host`` until the block ends; yield its base URL (no slash)."""
    server = LocalServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="medcrawl-local-http", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
