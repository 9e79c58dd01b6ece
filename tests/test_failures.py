"""Download failures -> the short reasons rows and stats carry, for the exceptions Scrapy and Twisted raise."""

from __future__ import annotations

import pytest
from scrapy.exceptions import (CannotResolveHostError, DownloadCancelledError, DownloadConnectionRefusedError,
                               DownloadFailedError, DownloadTimeoutError, IgnoreRequest, ResponseDataLossError,
                               UnsupportedURLSchemeError)
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils._download_handlers import get_maxsize_msg
from twisted.internet import error as tx_error

from medcrawl.failures import MediaFailure, Refused, failure_reason

URL = "http://127.0.0.1:1/x.png"


@pytest.mark.parametrize("exc, reason, status", [
    (HttpError(Response(URL, status=404), "Ignoring non-200 response"), "http_404", "error"),
    (HttpError(Response(URL, status=503), "Ignoring non-200 response"), "http_503", "error"),
    (DownloadTimeoutError("took longer than 30.0 seconds"), "timeout", "error"),
    (tx_error.TimeoutError(), "timeout", "error"),
    (CannotResolveHostError("no such host"), "dns_error", "error"),
    (tx_error.DNSLookupError(), "dns_error", "error"),
    (DownloadConnectionRefusedError(), "connection_refused", "error"),
    (ConnectionRefusedError(), "connection_refused", "error"),
    (ResponseDataLossError(), "data_loss", "error"),
    (UnsupportedURLSchemeError("ftp"), "unsupported_scheme", "error"),
    (tx_error.ConnectionLost(), "connection_failed", "error"),
    (DownloadFailedError("reset"), "connection_failed", "error"),
    (DownloadCancelledError(get_maxsize_msg(9_000_000, 1000, Request(URL), expected=True)), "too_large",
     "error"),
    (DownloadCancelledError("stopped"), "cancelled", "error"),
    (IgnoreRequest("Forbidden by robots.txt"), "robots_txt", "skipped"),
    (IgnoreRequest("Filtered offsite request to 'cdn.example'"), "offsite", "skipped"),
    (IgnoreRequest("some middleware said no"), "ignored", "skipped"),
    (IgnoreRequest("max redirections reached"), "too_many_redirects", "error"),
    (Refused("private_address", "error", "127.0.0.2 is a loopback address"), "private_address", "error"),
    (Refused("robots_txt", "skipped"), "robots_txt", "skipped"),
    (MediaFailure("empty"), "empty", "error"),
    (MediaFailure("too_small", "skipped"), "too_small", "skipped"),
    (RuntimeError("anything else"), "download_failed", "error"),
    (None, "download_failed", "error"),
])
def test_failure_reason(exc, reason, status):
    assert failure_reason(exc) == (reason, status)


def test_a_media_failure_is_the_kind_scrapy_logs_without_a_traceback():
    from medcrawl.failures import QuietMediaFailure

    assert isinstance(MediaFailure("http_404"), QuietMediaFailure)
    assert str(MediaFailure("http_404")) == "http_404"
