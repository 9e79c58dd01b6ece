"""Turn download failures into the short reasons that feed rows and stats carry."""

from __future__ import annotations

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
    UnsupportedURLSchemeError,
)
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet import error as tx_error

try:  # media failures that Scrapy's MediaPipeline logs without a traceback (expected outcomes)
    from scrapy.pipelines.media import _MediaRequestFiltered as QuietMediaFailure
except ImportError:  # pragma: no cover - older/newer Scrapy: failures are logged with a traceback
    from scrapy.pipelines.media import FileException as QuietMediaFailure  # type: ignore[assignment]

ERROR, SKIPPED = "error", "skipped"
BY_TYPE: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((DownloadTimeoutError, TimeoutError, tx_error.TimeoutError), "timeout"),
    ((CannotResolveHostError, tx_error.DNSLookupError), "dns_error"),
    ((DownloadConnectionRefusedError, ConnectionRefusedError, tx_error.ConnectionRefusedError),
     "connection_refused"),
    ((ResponseDataLossError,), "data_loss"),
    ((UnsupportedURLSchemeError,), "unsupported_scheme"),
    ((DownloadFailedError, tx_error.ConnectionLost, ConnectionError), "connection_failed"),
)


class MediaFailure(QuietMediaFailure):
    """A media download that produced no usable bytes, with its row reason and status.

    Reported as a row (and one INFO line), so it subclasses the exception Scrapy's MediaPipeline
    treats as expected instead of logging an ERROR traceback per failed image.
    """

    def __init__(self, reason: str, status: str = ERROR):
        self.reason, self.status = reason, status
        super().__init__(reason)


class Refused(IgnoreRequest):
    """A request medcrawl's middlewares refuse on purpose, with the row reason and status it stands for."""

    def __init__(self, reason: str, status: str = ERROR, detail: str = ""):
        self.reason, self.status = reason, status
        super().__init__(f"{reason}: {detail}" if detail else reason)


def failure_reason(exc: BaseException | None) -> tuple[str, str]:
    """(reason, status) for an exception raised while downloading an image or a PDF."""
    if isinstance(exc, (MediaFailure, Refused)):
        return exc.reason, exc.status
    if isinstance(exc, HttpError):
        return f"http_{exc.response.status}", ERROR
    if isinstance(exc, DownloadCancelledError) or _too_large(exc):
        return ("too_large" if _too_large(exc) else "cancelled"), ERROR
    if isinstance(exc, IgnoreRequest):
        reason = _ignored_reason(str(exc))
        return reason, ERROR if reason == "too_many_redirects" else SKIPPED
    for types, reason in BY_TYPE:
        if isinstance(exc, types):
            return reason, ERROR
    return "download_failed", ERROR


def _too_large(exc: BaseException | None) -> bool:
    return "max size" in str(exc)


def _ignored_reason(message: str) -> str:
    if "robots.txt" in message:
        return "robots_txt"
    if "offsite" in message:
        return "offsite"
    if "max redirections" in message:
        return "too_many_redirects"
    return "ignored"
