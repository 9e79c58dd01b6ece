"""Serve a folder on 127.0.0.1 (any free port) for the crawl benchmarks: threaded, keep-alive, deep backlog.

``python -m bench.serve DIR`` prints ``port N`` once listening. Unlike ``python -m http.server``
(listen backlog 5, HTTP/1.0) it does not stall 64 concurrent connections on SYN retries.
It is medcrawl's local server (the demo's and the tests') in a process of its own.
"""

import sys

from medcrawl.oneoff.localserver import LocalServer, QuietHandler, folder_handler


class KeepAliveHandler(QuietHandler):
    """Static files over HTTP/1.1, no access log."""

    protocol_version = "HTTP/1.1"


def main() -> None:
    server = LocalServer(("127.0.0.1", 0), folder_handler(sys.argv[1], KeepAliveHandler))
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
