"""Serve a folder on 127.0.0.1 (any free port) for the crawl benchmarks: threaded, keep-alive, deep backlog.

``python bench/serve.py DIR`` prints ``port N`` once listening. Unlike ``python -m http.server``
(listen backlog 5, HTTP/1.0) it does not stall 64 concurrent connections on SYN retries.
"""

import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class Handler(SimpleHTTPRequestHandler):
    """Static files over HTTP/1.1, no access log."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 512
    daemon_threads = True


def main() -> None:
    server = Server(("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
