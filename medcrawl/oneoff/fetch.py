"""HTTP(S) fetching for one-off inputs: byte and time limits, and a guard against private addresses.

The guard resolves the host first, refuses the request if any address is not public
(``medcrawl.addresses``: private, loopback, link-local, site-local, multicast, reserved,
unspecified, shared, and the IPv6 forms that carry such an IPv4 address) and then connects to
the address it checked, so a second DNS answer cannot swap in another one. Every redirect hop
is checked the same way. Proxies from the environment are not used: a proxy would bypass the guard.
The time limit bounds the whole fetch (name lookup, connect, status line, headers, chunk sizes,
body): the lookup runs on a thread of its own that is not waited for past the deadline, and a
watchdog shuts the socket down at the deadline, however slowly the server trickles bytes.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import zlib
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from medcrawl import __version__
from medcrawl.addresses import address_problem, networks

USER_AGENT = f"medcrawl/{__version__} (one-off classification)"
REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 64 * 1024


class FetchError(Exception):
    """A URL that could not be fetched, with a short machine-readable reason."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class FetchLimits:
    """What one fetch may cost and where it may go."""

    timeout: float = 20.0                  # seconds for the whole fetch, redirects included
    max_bytes: int = 100 * 1024 * 1024     # body size limit, after content decoding
    max_redirects: int = 5
    allow_private: bool = False            # allow every non-public address
    allowed_networks: tuple[str, ...] = ()  # CIDR blocks allowed even when allow_private is off
    user_agent: str = USER_AGENT


@dataclass(frozen=True)
class Response:
    """A fetched body and what the server said about it."""

    url: str                                # final URL, after redirects
    status: int
    content_type: str                       # media type only, lower case, no parameters
    body: bytes = field(repr=False)


class AddressGuard:
    """Resolve a host and refuse it unless every address it resolves to may be fetched."""

    def __init__(self, allow_private: bool = False, allowed_networks: tuple[str, ...] = ()):
        self.allow_private = allow_private
        self.allowed = networks(allowed_networks)

    def resolve(self, host: str, port: int, deadline: float | None = None) -> str:
        """The address to connect to, looked up by ``deadline`` (time.monotonic()) at the latest.

        Raises FetchError('dns_error', 'private_address' or 'timeout').
        """
        try:
            infos = lookup(host, port, deadline)
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchError("dns_error", f"cannot resolve {host}: {exc}") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not self.allow_private:
            for address in addresses:
                problem = address_problem(address, self.allowed)
                if problem:
                    raise FetchError("private_address", f"{host} resolves to {problem} address "
                                     f"{address}; use --allow-private-urls to allow it")
        return addresses[0]


def lookup(host: str, port: int, deadline: float | None = None) -> list:
    """socket.getaddrinfo on a daemon thread, waited for until ``deadline`` only.

    getaddrinfo cannot be interrupted: a lookup still running at the deadline is left to finish
    on its own thread, and the fetch fails with 'timeout' at once.
    """
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
        raise FetchError("timeout", f"no time left to resolve {host}")
    result: Future = Future()

    def run() -> None:
        try:
            result.set_result(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting fetch
            result.set_exception(exc)

    threading.Thread(target=run, name="medcrawl-lookup", daemon=True).start()
    try:
        return result.result(timeout=left)
    except FutureTimeout:
        raise FetchError("timeout", f"resolving {host} took longer than the time left") from None


class Fetcher:
    """GET one URL at a time within FetchLimits; thread-safe (no shared connection state)."""

    def __init__(self, limits: FetchLimits | None = None):
        self.limits = limits or FetchLimits()
        self.guard = AddressGuard(self.limits.allow_private, self.limits.allowed_networks)
        self._ssl = ssl.create_default_context()

    def get(self, url: str, deadline: float | None = None) -> Response:
        """Fetch a URL, following checked redirects; raises FetchError with a specific reason.

        ``deadline`` (a time.monotonic() value) can cut the time limit shorter, e.g. for a
        request that fetches many URLs.
        """
        own = time.monotonic() + self.limits.timeout
        deadline = own if deadline is None else min(own, deadline)
        for _ in range(self.limits.max_redirects + 1):
            status, headers, body = self._request(url, deadline)
            location = headers.get("location")
            if status in REDIRECTS and location:
                url = urljoin(url, location.strip())
                continue
            if status >= 400:
                raise FetchError(f"http_{status}", f"{url} answered HTTP {status}")
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            return Response(url, status, media, body)
        raise FetchError("too_many_redirects", f"more than {self.limits.max_redirects} redirects")

    def _request(self, url: str, deadline: float) -> tuple[int, http.client.HTTPMessage, bytes]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchError("unsupported_scheme", f"only http(s) URLs can be fetched: {url}")
        if not parts.hostname:
            raise FetchError("bad_url", f"no host in {url}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise FetchError("bad_url", f"{url}: {exc}") from None
        address = self.guard.resolve(parts.hostname, port, deadline)
        watchdog = Watchdog(deadline)
        conn = self._connection(parts.scheme, parts.hostname, port, address, deadline, watchdog)
        try:
            result = self._exchange(conn, parts, deadline, url)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a FetchError
            raise self._failure(exc, url, watchdog.fired) from None
        finally:
            watchdog.cancel()
            conn.close()
        if watchdog.fired:          # the socket was shut mid-body: what was read is cut short
            raise self._failure(TimeoutError(), url, True)
        return result

    def _exchange(self, conn, parts, deadline: float, url: str):
        conn.request("GET", _target(parts), headers={
            "User-Agent": self.limits.user_agent, "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate"})
        sock = conn.sock            # getresponse() may drop conn.sock on "Connection: close"
        resp = conn.getresponse()
        if resp.status in REDIRECTS or resp.status >= 400:
            return resp.status, resp.headers, b""
        return resp.status, resp.headers, self._read(sock, resp, deadline, url)

    def _failure(self, exc: Exception, url: str, deadline_passed: bool) -> FetchError:
        """The FetchError for an exception raised while fetching ``url``."""
        if isinstance(exc, FetchError):
            return exc
        if deadline_passed or isinstance(exc, (TimeoutError, socket.timeout)):
            return FetchError("timeout", f"{url} took longer than {self.limits.timeout:g}s")
        if isinstance(exc, ssl.SSLError):
            return FetchError("tls_error", f"{url}: {exc}")
        if isinstance(exc, zlib.error):
            return FetchError("bad_encoding", f"{url}: {exc}")
        if isinstance(exc, (OSError, http.client.HTTPException)):
            return FetchError("connection_error", f"{url}: {type(exc).__name__}: {exc}")
        raise exc

    def _connection(self, scheme, host, port, address, deadline,
                    watchdog: Watchdog) -> http.client.HTTPConnection:
        """A connection to ``host`` that opens its socket to the already checked ``address``."""
        timeout = _remaining(deadline, self.limits.timeout)
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn._create_connection = lambda _addr, tmo, src: watchdog.watch(  # type: ignore[attr-defined]
            socket.create_connection((address, port), tmo, src))
        return conn

    def _read(self, sock, resp: http.client.HTTPResponse, deadline: float, url: str) -> bytes:
        """Read and decode the body, enforcing max_bytes and the deadline."""
        limit = self.limits.max_bytes
        length = resp.getheader("content-length", "")
        if length.isdigit() and int(length) > limit and not resp.getheader("content-encoding"):
            raise FetchError("too_large", f"{url} is {length} bytes, over the {limit} byte limit")
        decoder = _decoder(resp.getheader("content-encoding", ""), url)
        out = bytearray()
        while True:
            sock.settimeout(_remaining(deadline, self.limits.timeout))
            chunk = resp.read1(CHUNK)
            if not chunk:
                break
            out += decoder.decompress(chunk, limit + 1 - len(out)) if decoder else chunk
            if len(out) > limit:
                raise FetchError("too_large", f"{url} is over the {limit} byte limit")
        if decoder:
            out += decoder.flush()
        return bytes(out)


class Watchdog:
    """Shut a fetch's socket down when its deadline passes, whatever the read is waiting for.

    Socket timeouts bound each read only: a server that trickles the status line, headers or
    chunk-size lines one byte at a time never trips them. The watchdog bounds the whole fetch.
    """

    def __init__(self, deadline: float):
        self.deadline, self.fired = deadline, False
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def watch(self, sock: socket.socket) -> socket.socket:
        """Start watching a newly connected socket; returns it."""
        self._timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), self._fire, (sock,))
        self._timer.daemon = True
        self._timer.start()
        return sock

    def _fire(self, sock: socket.socket) -> None:
        with self._lock:
            self.fired = True
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _target(parts) -> str:
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def _remaining(deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("timeout", f"took longer than {timeout:g}s")
    return left


def _decoder(encoding: str, url: str):
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise FetchError("unsupported_encoding", f"{url} uses Content-Encoding {encoding}")
