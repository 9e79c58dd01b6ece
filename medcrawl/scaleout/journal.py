"""Crash-safe JOBDIR: a crawl killed at any moment (``kill -9`` too) resumes without lost or repeated rows.

Scrapy's JOBDIR keeps the request queue, the seen-request fingerprints and ``spider.state``,
but only a clean stop writes the queue's index, and nothing records which items reached the
feeds. So next to them this module keeps ``JOBDIR/medcrawl-journal.sqlite`` (WAL, one commit
per change):

* ``requests``: every request the scheduler accepted, as Scrapy serialises it, with its state
  (queued, handed to the engine, done). A request is done once its callback's output is
  exhausted and every item it produced has left the pipelines (written to the feeds).
* ``rows``: the (image_url, source_url) of every row written; those rows are never produced again.
* ``meta.state``: ``running`` while a crawl runs, ``clean`` after the scheduler closed.

A restart that finds ``running`` discards the untrustworthy disk queue, re-registers every
journaled fingerprint with the dupe filter, re-queues the requests that were not done, adds the
rows found in the (append-mode, local) feed files to ``rows`` and cuts a partial last line.
A clean pause/resume (one Ctrl-C) is plain Scrapy JOBDIR.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import pickle
import shutil
import weakref
from collections import defaultdict
from contextlib import contextmanager
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

from scrapy import Request, signals
from scrapy.core.scheduler import Scheduler
from scrapy.exceptions import NotConfigured
from scrapy.extensions.feedexport import FileFeedStorage
from scrapy.utils.request import request_from_dict
from scrapy.crawler import Crawler
from w3lib.url import file_uri_to_path

from medcrawl.files import repair_partial_line
from medcrawl.items import ImageItem
from medcrawl.scaleout import sqlite

logger = logging.getLogger(__name__)
JOURNAL_NAME = "medcrawl-journal.sqlite"
QUEUED, STARTED, DONE = 0, 1, 2
LINE_FEEDS = {"jsonlines": "jsonl", "jl": "jsonl", "jsonl": "jsonl", "csv": "csv"}


def row_key(image_url: str, source_url: str) -> str:
    return f"{image_url}\n{source_url}"


class Journal:
    """The crash-safe record of one job: requests and their state, rows written, run state."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS requests"
        " (fp TEXT PRIMARY KEY, state INTEGER NOT NULL, data BLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY)",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )

    def __init__(self, jobdir: str | os.PathLike):
        self.path = Path(jobdir, JOURNAL_NAME)
        self.db = sqlite.connect(self.path, self.SCHEMA)
        self.crashed = self._state() == "running"
        self.completion = Completion(self)

    def _state(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'state'").fetchone()
        return row[0] if row else None

    def set_state(self, state: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('state', ?)", (state,))

    def add_request(self, fp: str, data: bytes) -> None:
        self.db.execute("INSERT OR IGNORE INTO requests VALUES (?, ?, ?)", (fp, QUEUED, data))

    def set_request_state(self, fp: str, state: int) -> None:
        self.db.execute("UPDATE requests SET state = ? WHERE fp = ? AND state < ?", (state, fp, state))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group statements into one commit."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def finish(self) -> None:
        """A clean stop: every request handed to the engine has been fully processed."""
        with self.transaction():
            self.db.execute("UPDATE requests SET state = ? WHERE state = ?", (DONE, STARTED))
            self.set_state("clean")

    def requests(self) -> Iterator[tuple[int, bytes]]:
        """(state, serialised request) of every journaled request, in the order they were queued."""
        yield from self.db.execute("SELECT state, data FROM requests ORDER BY rowid")

    def has_row(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM rows WHERE key = ?", (key,)).fetchone() is not None

    def add_rows(self, keys: Iterable[str]) -> int:
        """Record written rows; returns how many were new."""
        with self.transaction():
            before = self.db.total_changes
            self.db.executemany("INSERT OR IGNORE INTO rows VALUES (?)", ((k,) for k in keys))
            return self.db.total_changes - before

    def counts(self) -> dict[str, int]:
        by_state = dict(self.db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state").fetchall())
        return {"queued": by_state.get(QUEUED, 0), "started": by_state.get(STARTED, 0),
                "done": by_state.get(DONE, 0),
                "rows": self.db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]}

    def close(self) -> None:
        self.db.close()


_JOURNALS: weakref.WeakKeyDictionary[Any, Journal] = weakref.WeakKeyDictionary()


def journal_for(crawler: Crawler) -> Journal | None:
    """The job's journal (one per crawler), or None without JOBDIR."""
    jobdir = crawler.settings.get("JOBDIR")
    if not jobdir:
        return None
    if crawler not in _JOURNALS:
        _JOURNALS[crawler] = Journal(jobdir)
    return _JOURNALS[crawler]


class JournaledScheduler(Scheduler):
    """Scrapy's scheduler plus the journal: what it accepts and hands out survives ``kill -9``."""

    journal: Journal | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> JournaledScheduler:
        scheduler = super().from_crawler(crawler)
        scheduler.journal = journal_for(crawler)
        return scheduler

    def open(self, spider: Any) -> Any:
        crashed = self.journal is not None and self.journal.crashed
        if crashed and self.dqdir:
            logger.warning("JOBDIR %s was not closed cleanly: rebuilding the queue from %s",
                           Path(self.dqdir).parent, JOURNAL_NAME)
            shutil.rmtree(self.dqdir, ignore_errors=True)
            Path(self.dqdir).mkdir(parents=True)
        result = super().open(spider)
        if self.journal is not None:
            if crashed:
                self._recover()
            self._warn_overwritten_feeds()
            self.journal.set_state("running")
        return result

    def _warn_overwritten_feeds(self) -> None:
        """-O on a resumed job would drop the rows already written (they are not produced again)."""
        assert self.journal is not None and self.crawler is not None
        overwritten = [uri for uri, options in self.crawler.settings.getdict("FEEDS").items()
                       if (options or {}).get("overwrite")]
        if overwritten and self.journal.counts()["rows"]:
            logger.error("Resuming JOBDIR %s with overwritten feeds %s: the rows written before are "
                         "not repeated, so those files will lack them; use -o (append) with JOBDIR",
                         Path(self.journal.path).parent, ", ".join(map(str, overwritten)))

    def _recover(self) -> None:
        """Seen fingerprints and pending requests from the journal, written rows from the feeds."""
        assert self.journal is not None and self.crawler is not None
        rows = self.journal.add_rows(feed_row_keys(self.crawler.settings))
        requeued = 0
        for state, data in self.journal.requests():
            request = request_from_dict(pickle.loads(data), spider=self.spider)
            self.df.request_seen(request)
            if state != DONE:
                Scheduler.enqueue_request(self, request.replace(dont_filter=True))
                requeued += 1
        assert self.stats is not None
        self.stats.set_value("medcrawl/resume/requeued", requeued)
        logger.info("Resume after an unclean stop: %d requests re-queued, %d rows found in the "
                    "feeds; journal %s", requeued, rows, self.journal.counts())

    def enqueue_request(self, request: Request) -> bool:
        accepted = super().enqueue_request(request)
        if accepted and self.journal is not None:
            try:
                data = pickle.dumps(request.to_dict(spider=self.spider), protocol=4)
            except (ValueError, pickle.PicklingError, AttributeError, TypeError):
                assert self.stats is not None
                self.stats.inc_value("medcrawl/resume/unjournaled")
            else:
                self.journal.add_request(self._fp(request), data)
        if self.journal is not None:
            self.journal.completion.handled(request)
        return accepted

    def next_request(self) -> Request | None:
        request = super().next_request()
        if request is not None and self.journal is not None:
            self.journal.set_request_state(self._fp(request), STARTED)
        return request

    def close(self, reason: str) -> Any:
        result = super().close(reason)
        if self.journal is not None:
            self.journal.finish()
        return result

    def _fp(self, request: Request) -> str:
        assert self.crawler is not None
        return self.crawler.request_fingerprinter.fingerprint(request).hex()


class Completion:
    """Counts, per request, the items and requests its callback yielded that are not yet handled.

    A request is done once its output is exhausted and each item was scraped, dropped or failed
    and each request was accepted or filtered by the scheduler (so it is journaled).
    """

    def __init__(self, journal: Journal):
        self.journal = journal
        self._origin: dict[int, tuple[str, Any]] = {}   # id(object) -> (request fp, object)
        self._pending: defaultdict[str, int] = defaultdict(int)
        self._exhausted: set[str] = set()

    def expect(self, fp: str, obj: Any) -> None:
        self._origin[id(obj)] = (fp, obj)
        self._pending[fp] += 1

    def handled(self, obj: Any) -> None:
        entry = self._origin.get(id(obj))
        if entry is not None and entry[1] is obj:
            del self._origin[id(obj)]
            self._pending[entry[0]] -= 1
            self._maybe_done(entry[0])

    def exhausted(self, fp: str) -> None:
        self._exhausted.add(fp)
        self._maybe_done(fp)

    def _maybe_done(self, fp: str) -> None:
        if fp in self._exhausted and self._pending.get(fp, 0) <= 0:
            self._exhausted.discard(fp)
            self._pending.pop(fp, None)
            self.journal.set_request_state(fp, DONE)


class ResumeMiddleware:
    """Spider middleware (outermost): drops rows already written in this job, tracks completion.

    Its signal handlers run after the FeedExporter's (extensions connect first), so a row is
    recorded only once it is in the feed.
    """

    def __init__(self, journal: Journal, crawler: Crawler):
        self.journal, self.crawler, self.stats = journal, crawler, crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ResumeMiddleware:
        journal = journal_for(crawler)
        if journal is None:
            raise NotConfigured("no JOBDIR")
        mw = cls(journal, crawler)
        crawler.signals.connect(mw.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(mw.item_finished, signal=signals.item_dropped)
        crawler.signals.connect(mw.item_finished, signal=signals.item_error)
        return mw

    def process_spider_output(self, response: Any, result: Iterable[Any]) -> Iterator[Any]:
        fp = self._fp(response)
        for element in result:
            if self._keep(fp, element):
                yield element
        self.journal.completion.exhausted(fp)

    async def process_spider_output_async(self, response: Any,
                                          result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        fp = self._fp(response)
        async for element in result:
            if self._keep(fp, element):
                yield element
        self.journal.completion.exhausted(fp)

    def _keep(self, fp: str, element: Any) -> bool:
        """False for a row this job already wrote; the rest is tracked until handled."""
        if isinstance(element, ImageItem) and \
                self.journal.has_row(row_key(element.image_url, element.source_url)):
            self.stats.inc_value("medcrawl/resume/rows_already_written")
            return False
        if element is not None:
            self.journal.completion.expect(fp, element)
        return True

    def item_scraped(self, item: Any, response: Any = None, spider: Any = None) -> None:
        if isinstance(item, ImageItem):
            self.journal.add_rows([row_key(item.image_url, item.source_url)])
        self.journal.completion.handled(item)

    def item_finished(self, item: Any, **kwargs: Any) -> None:
        self.journal.completion.handled(item)

    def _fp(self, response: Any) -> str:
        return self.crawler.request_fingerprinter.fingerprint(response.request).hex()


class DurableFileFeedStorage(FileFeedStorage):
    """Local feed files written unbuffered (each row reaches the OS at once), partial last line cut.

    On append to a non-empty CSV file the header line is not written again.
    """

    def __init__(self, uri: str, *, feed_options: dict[str, Any] | None = None):
        super().__init__(uri, feed_options=feed_options)
        appending = self.write_mode == "ab" and Path(self.path).is_file() and Path(self.path).stat().st_size
        if appending and feed_options is not None and feed_options.get("format") == "csv":
            feed_options.setdefault("item_export_kwargs", {})["include_headers_line"] = False

    def open(self, spider: Any) -> Any:
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.write_mode == "ab" and path.is_file():
            repair_partial_line(path)
        return path.open(self.write_mode, buffering=0)


def local_line_feeds(settings: Any) -> list[tuple[Path, str]]:
    """(path, 'jsonl' | 'csv') of the FEEDS that are appended local files a restart can read."""
    feeds = []
    for uri, options in settings.getdict("FEEDS").items():
        uri, kind = str(uri), LINE_FEEDS.get((options or {}).get("format", ""))
        if kind is None or (options or {}).get("overwrite") or "%(" in uri:
            continue
        if uri.startswith("file:"):
            uri = file_uri_to_path(uri)
        elif "://" in uri or uri.startswith("stdout:"):
            continue
        feeds.append((Path(uri), kind))
    return feeds


def feed_row_keys(settings: Any) -> Iterator[str]:
    """Row keys in the complete lines of the local feed files."""
    for path, kind in local_line_feeds(settings):
        if path.is_file():
            for row in read_rows(path, kind):
                yield row_key(row.get("image_url", ""), row.get("source_url", ""))


def read_rows(path: Path, kind: str) -> Iterator[dict]:
    """Rows of the complete lines of a JSON-lines or CSV feed (repeated CSV headers skipped)."""
    data = path.read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    text = data.decode("utf-8", errors="replace")
    if kind == "jsonl":
        for line in text.splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                continue
        return
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    for values in reader:
        if header and values != header and len(values) == len(header):
            yield dict(zip(header, values))
