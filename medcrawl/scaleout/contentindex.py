"""A persistent index of stored image contents, shared by every run (and worker) using one store.

``sha256 -> path + verdict per model`` lets a re-run skip storing and classifying content it
already has; ``url -> sha256 + fetch time`` lets it skip downloading URLs fetched less than
``FILES_EXPIRES`` days ago. Two backends with one interface: SQLite (one machine, default:
``<store>.index.sqlite`` next to a local store) and Redis (several workers; ``claim`` is an
atomic ``SET NX`` so exactly one worker stores and labels each new content); a null index when off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scrapy.crawler import Crawler

from medcrawl.config import IndexConfig
from medcrawl.scaleout import sqlite

logger = logging.getLogger(__name__)

# Row reasons that depend on this run, not on the content: never cached.
TRANSIENT_REASONS = frozenset({"classifier_error", "no_content", "store_failed"})


@dataclass(frozen=True)
class UrlEntry:
    """What a URL gave when it was last downloaded."""

    sha256: str
    path: str
    fetched: float                   # unix time

    def age_days(self, now: float | None = None) -> float:
        return ((now or time.time()) - self.fetched) / 86400.0


def cacheable(verdict: dict) -> bool:
    """True for verdicts that only depend on the bytes (ok, skipped or a decoding error)."""
    return verdict.get("status") in ("ok", "skipped", "error") and \
        verdict.get("error", "") not in TRANSIENT_REASONS


class SqliteContentIndex:
    """The index in one SQLite file (WAL): for one crawl process at a time."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS contents (sha256 TEXT NOT NULL, model TEXT NOT NULL,"
        " path TEXT NOT NULL, verdict TEXT NOT NULL, added REAL NOT NULL,"
        " PRIMARY KEY (sha256, model))",
        "CREATE TABLE IF NOT EXISTS urls (url TEXT PRIMARY KEY, sha256 TEXT NOT NULL,"
        " path TEXT NOT NULL, fetched REAL NOT NULL)",
    )

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.db = sqlite.connect(self.path, self.SCHEMA)

    def __repr__(self) -> str:
        return f"sqlite:{self.path}"

    def stored_path(self, sha256: str) -> str | None:
        """The store path of a known content, or None."""
        row = self.db.execute("SELECT path FROM contents WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone()
        return row[0] if row else None

    def verdict(self, sha256: str, model: str) -> dict | None:
        row = self.db.execute("SELECT verdict FROM contents WHERE sha256 = ? AND model = ?",
                              (sha256, model)).fetchone()
        return json.loads(row[0]) if row else None

    def record(self, sha256: str, model: str, path: str, verdict: dict) -> None:
        """Remember a content's store path and its verdict under a model."""
        self.db.execute("INSERT OR REPLACE INTO contents VALUES (?, ?, ?, ?, ?)",
                        (sha256, model, path, json.dumps(verdict), time.time()))

    def url_entry(self, url: str) -> UrlEntry | None:
        row = self.db.execute("SELECT sha256, path, fetched FROM urls WHERE url = ?", (url,)).fetchone()
        return UrlEntry(*row) if row else None

    def record_url(self, url: str, sha256: str, path: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO urls VALUES (?, ?, ?, ?)",
                        (url, sha256, path, time.time()))

    def claim(self, sha256: str) -> bool:
        """True when this process should store and label the content (it is not indexed yet)."""
        return self.stored_path(sha256) is None

    def release(self, sha256: str) -> None:
        """Give a claim back (storing failed)."""

    def claimed_elsewhere(self, sha256: str) -> bool:
        return False

    async def wait_verdict(self, sha256: str, model: str, timeout: float) -> dict | None:
        return self.verdict(sha256, model)

    def counts(self) -> dict[str, int]:
        """Number of indexed contents and URLs."""
        return {"contents": self.db.execute("SELECT COUNT(DISTINCT sha256) FROM contents").fetchone()[0],
                "urls": self.db.execute("SELECT COUNT(*) FROM urls").fetchone()[0]}

    def close(self) -> None:
        self.db.close()


class RedisContentIndex:
    """The index in Redis, shared by the workers of a distributed harvest.

    Keys (``prefix`` defaults to ``medcrawl:index``): ``PREFIX:c:<sha256>`` hash (``path`` and one
    JSON verdict per model), ``PREFIX:u:<url>`` hash (``sha256``, ``path``, ``fetched``),
    ``PREFIX:claim:<sha256>`` string (the worker storing and labelling it; expires).
    """

    POLL_SECONDS = 0.2

    def __init__(self, server: Any, prefix: str = "medcrawl:index", claim_ttl: int = 600):
        self.server, self.prefix, self.claim_ttl = server, prefix.rstrip(":"), claim_ttl
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @classmethod
    def from_url(cls, url: str, prefix: str = "medcrawl:index", claim_ttl: int = 600) -> RedisContentIndex:
        import redis

        return cls(redis.Redis.from_url(url, decode_responses=True), prefix, claim_ttl)

    def __repr__(self) -> str:
        return f"redis:{self.prefix}"

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    def stored_path(self, sha256: str) -> str | None:
        return self.server.hget(self._key("c", sha256), "path")

    def verdict(self, sha256: str, model: str) -> dict | None:
        raw = self.server.hget(self._key("c", sha256), f"v:{model}")
        return json.loads(raw) if raw else None

    def record(self, sha256: str, model: str, path: str, verdict: dict) -> None:
        self.server.hset(self._key("c", sha256), mapping={"path": path, f"v:{model}": json.dumps(verdict)})

    def url_entry(self, url: str) -> UrlEntry | None:
        row = self.server.hgetall(self._key("u", url))
        return UrlEntry(row["sha256"], row["path"], float(row["fetched"])) if row else None

    def record_url(self, url: str, sha256: str, path: str) -> None:
        self.server.hset(self._key("u", url), mapping={"sha256": sha256, "path": path,
                                                       "fetched": repr(time.time())})

    def claim(self, sha256: str) -> bool:
        """Atomically reserve a content not indexed yet; False if indexed or another worker has it."""
        if self.stored_path(sha256) is not None:
            return False
        key = self._key("claim", sha256)
        return bool(self.server.set(key, self.worker, nx=True, ex=self.claim_ttl)) or \
            self.server.get(key) == self.worker

    def release(self, sha256: str) -> None:
        key = self._key("claim", sha256)
        if self.server.get(key) == self.worker:
            self.server.delete(key)

    def claimed_elsewhere(self, sha256: str) -> bool:
        owner = self.server.get(self._key("claim", sha256))
        return owner is not None and owner != self.worker

    async def wait_verdict(self, sha256: str, model: str, timeout: float) -> dict | None:
        """The verdict another worker is producing, polled until ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            verdict = self.verdict(sha256, model)
            if verdict is not None or time.monotonic() >= deadline:
                return verdict
            if not self.claimed_elsewhere(sha256):      # the owner gave up or its claim expired
                return self.verdict(sha256, model)
            await asyncio.sleep(self.POLL_SECONDS)

    def counts(self) -> dict[str, int]:
        return {"contents": self._count("c"), "urls": self._count("u")}

    def _count(self, kind: str) -> int:
        return sum(1 for _ in self.server.scan_iter(self._key(kind, "*"), count=1000))

    def close(self) -> None:
        self.server.close()


class NullContentIndex:
    """No index (``MEDCRAWL_CONTENT_INDEX=off``, or a remote store without Redis): nothing is known or kept."""

    def __repr__(self) -> str:
        return "off"

    def __bool__(self) -> bool:
        return False

    def stored_path(self, sha256: str) -> None:
        return None

    def verdict(self, sha256: str, model: str) -> None:
        return None

    def record(self, sha256: str, model: str, path: str, verdict: dict) -> None:
        pass

    def url_entry(self, url: str) -> None:
        return None

    def record_url(self, url: str, sha256: str, path: str) -> None:
        pass

    def claim(self, sha256: str) -> bool:
        return True

    def release(self, sha256: str) -> None:
        pass

    def claimed_elsewhere(self, sha256: str) -> bool:
        return False

    async def wait_verdict(self, sha256: str, model: str, timeout: float) -> None:
        return None

    def counts(self) -> dict[str, int]:
        return {"contents": 0, "urls": 0}

    def close(self) -> None:
        pass


ContentIndex = SqliteContentIndex | RedisContentIndex | NullContentIndex
_SHARED: weakref.WeakKeyDictionary[Any, ContentIndex] = weakref.WeakKeyDictionary()


def index_location(config: IndexConfig, store: str | None) -> str | None:
    """Where the index lives: MEDCRAWL_CONTENT_INDEX, else the harvest's Redis, else next to a local store."""
    if config.location:
        return None if config.off else config.location
    if config.redis_url:
        return config.redis_url
    if store and ("://" not in store or store.startswith("file://")):
        local = Path(store.removeprefix("file://")).expanduser()
        return str(local.parent / f"{local.name}.index.sqlite")
    return None


def open_index(location: str | None, config: IndexConfig) -> ContentIndex:
    """An index for a location from ``index_location`` (None: the null index)."""
    if not location:
        return NullContentIndex()
    if location.startswith(("redis://", "rediss://", "unix://")):
        return RedisContentIndex.from_url(location, config.key, config.claim_ttl)
    return SqliteContentIndex(location.removeprefix("sqlite://"))


def shared_index(crawler: Crawler, store: str | None) -> ContentIndex:
    """One index per crawler, shared by the store, classify and dataset pipelines."""
    if crawler not in _SHARED:
        config = IndexConfig.from_crawler(crawler)
        index = open_index(index_location(config, store), config)
        logger.info("Content index: %r", index)
        _SHARED[crawler] = index
    return _SHARED[crawler]
