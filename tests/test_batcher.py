"""The classify pipeline's Batcher and the store's in-flight limit, in process on a real reactor (trial)."""

from __future__ import annotations

import asyncio
import threading
import time

from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from scrapy.utils.reactor import install_reactor
from twisted.internet.error import ReactorAlreadyInstalledError

try:        # the crawl's reactor; any other one works too (then Scrapy's Twisted code paths run)
    install_reactor("twisted.internet.asyncioreactor.AsyncioSelectorReactor")
except ReactorAlreadyInstalledError:  # pragma: no cover - another test module chose one first
    pass

from twisted.internet import reactor, task  # noqa: E402 - after the reactor is chosen
from twisted.trial import unittest  # noqa: E402

from medcrawl.executor import OneThreadExecutor  # noqa: E402
from medcrawl.items import ImageItem  # noqa: E402
from medcrawl.pipelines.classify import Batcher  # noqa: E402
from medcrawl.pipelines.store import InFlightLimit  # noqa: E402


def use_reactor_loop() -> None:
    """Make the asyncio reactor's loop the current one again (another test may have run asyncio.run)."""
    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is not None:
        asyncio.set_event_loop(loop)


async def sleep(seconds: float) -> None:
    await maybe_deferred_to_future(task.deferLater(reactor, seconds, lambda: None))


class Labeller:
    """A label_batch that records each batch it gets and the thread it runs on."""

    def __init__(self, fail: bool = False):
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.fail = fail

    def __call__(self, items: list[ImageItem]) -> None:
        self.threads.add(threading.current_thread().name)
        self.batches.append([item.image_url for item in items])
        if self.fail:
            raise RuntimeError("model exploded")
        for item in items:
            item.label, item.status = "medical", "ok"


def rows(n: int) -> list[ImageItem]:
    return [ImageItem(image_url=f"http://127.0.0.1/{i}.png", body=b"x") for i in range(n)]


class BatcherTest(unittest.TestCase):
    timeout = 30

    def setUp(self):
        use_reactor_loop()
        self.executor = OneThreadExecutor("medcrawl-test-label")
        self.addCleanup(self.executor.close)

    def wait_all(self, batcher: Batcher, items: list[ImageItem]):
        return [maybe_deferred_to_future(batcher.submit(item)) for item in items]

    def test_a_full_batch_is_labelled_at_once_on_the_executor_thread(self):
        labeller = Labeller()
        batcher = Batcher(labeller, size=3, max_wait=20.0, executor=self.executor)

        async def run():
            started = time.monotonic()
            done = [await waiting for waiting in self.wait_all(batcher, rows(3))]
            assert time.monotonic() - started < 10            # not held back by max_wait
            assert [item.status for item in done] == ["ok"] * 3
            assert [len(b) for b in labeller.batches] == [3]
            assert labeller.threads and all(n.startswith("medcrawl-test-label") for n in labeller.threads)
            assert threading.current_thread() is threading.main_thread()
        return deferred_from_coro(run())

    def test_a_partial_batch_waits_at_most_max_wait(self):
        labeller = Labeller()
        batcher = Batcher(labeller, size=10, max_wait=0.5, executor=self.executor)

        async def run():
            started = time.monotonic()
            waiting = self.wait_all(batcher, rows(2))
            await sleep(0.2)
            assert labeller.batches == []                     # still collecting
            for w in waiting:
                await w
            assert 0.45 <= time.monotonic() - started < 10
            assert [len(b) for b in labeller.batches] == [2]
        return deferred_from_coro(run())

    def test_a_batch_that_fails_releases_every_row_with_a_reason(self):
        batcher = Batcher(Labeller(fail=True), size=2, max_wait=5.0, executor=self.executor)

        async def run():
            done = [await w for w in self.wait_all(batcher, rows(2))]
            assert [(i.status, i.error) for i in done] == [("error", "classifier_error")] * 2
        return deferred_from_coro(run())

    def test_close_labels_what_is_queued(self):
        labeller = Labeller()
        batcher = Batcher(labeller, size=100, max_wait=60.0, executor=self.executor)

        async def run():
            waiting = self.wait_all(batcher, rows(5))
            await batcher.close()
            assert [len(b) for b in labeller.batches] == [5]
            assert [(await w).status for w in waiting] == ["ok"] * 5
        return deferred_from_coro(run())


class InFlightLimitTest(unittest.TestCase):
    timeout = 30

    def setUp(self):
        use_reactor_loop()

    def test_rows_wait_for_a_free_place(self):
        limit = InFlightLimit(2)
        a, b, c = rows(3)

        async def run():
            await limit.enter(a)
            await limit.enter(b)
            third = deferred_from_coro(limit.enter(c))
            await sleep(0.1)
            assert not third.called and limit.count == 2
            limit.leave(ImageItem())                          # not in flight: changes nothing
            assert not third.called
            limit.leave(a)
            await maybe_deferred_to_future(third)
            assert limit.count == 2
            limit.leave(b)
            limit.leave(c)
            limit.leave(c)                                    # leaving twice counts once
            assert limit.count == 0
        return deferred_from_coro(run())
