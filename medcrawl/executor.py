"""One dedicated thread for blocking work (inference, PDF parsing), awaited from the crawl."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from scrapy.utils.asyncio import is_asyncio_available
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred

T = TypeVar("T")


class OneThreadExecutor:
    """Run callables one at a time on a single named thread, off the reactor / event loop."""

    def __init__(self, name: str):
        self.name = name
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Await ``fn(*args)`` executed on the executor's thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        future = self._executor.submit(fn, *args)
        if is_asyncio_available():
            return await asyncio.wrap_future(future)
        return await maybe_deferred_to_future(_deferred_from(future))

    def close(self) -> None:
        """Let queued work finish, then end the thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _deferred_from(future: Future) -> Deferred:
    """A Deferred fired on the reactor thread when a concurrent future completes."""
    from twisted.internet import reactor

    d: Deferred = Deferred()

    def done(f: Future) -> None:
        exc = f.exception()
        reactor.callFromThread(d.errback if exc else d.callback, exc or f.result())

    future.add_done_callback(done)
    return d
