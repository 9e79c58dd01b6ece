"""The content index in process: SQLite and Redis backends behind one interface, the null index, its location."""

from __future__ import annotations

import asyncio
import time

import pytest

from medcrawl.config import IndexConfig
from medcrawl.scaleout.contentindex import (NullContentIndex, RedisContentIndex, SqliteContentIndex, UrlEntry,
                                            cacheable, index_location, open_index)
from tests.support.loops import run

OK = {"status": "ok", "error": "", "label": "medical", "confidence": 0.93}


def test_sqlite_index_remembers_contents_and_urls_across_runs(tmp_path):
    index = SqliteContentIndex(tmp_path / "store.index.sqlite")
    assert index.claim("a" * 64) and index.verdict("a" * 64, "m@1") is None
    index.record("a" * 64, "m@1", "full/aa/a.png", OK)
    index.record_url("http://x/a.png", "a" * 64, "full/aa/a.png")
    index.close()

    again = SqliteContentIndex(tmp_path / "store.index.sqlite")          # the next run
    assert again.verdict("a" * 64, "m@1") == OK
    assert again.verdict("a" * 64, "m@2") is None                       # verdicts are per model
    assert not again.claim("a" * 64) and again.stored_path("a" * 64) == "full/aa/a.png"
    entry = again.url_entry("http://x/a.png")
    assert (entry.sha256, entry.path) == ("a" * 64, "full/aa/a.png") and entry.age_days() < 0.01
    assert again.counts() == {"contents": 1, "urls": 1}
    again.close()


def test_url_age_in_days():
    assert UrlEntry("s", "p", fetched=1000.0).age_days(now=1000.0 + 2 * 86400) == pytest.approx(2.0)


@pytest.mark.parametrize("verdict, cached", [
    (OK, True),
    ({"status": "skipped", "error": "too_small"}, True),
    ({"status": "error", "error": "truncated"}, True),              # depends on the bytes only
    ({"status": "error", "error": "classifier_error"}, False),      # depends on this run
    ({"status": "error", "error": "store_failed"}, False),
    ({"status": "", "error": ""}, False),
])
def test_only_verdicts_that_depend_on_the_bytes_are_cached(verdict, cached):
    assert cacheable(verdict) is cached


def test_null_index_knows_nothing_and_lets_every_content_through():
    index = open_index(None, IndexConfig())
    assert isinstance(index, NullContentIndex) and not index and repr(index) == "off"
    index.record("s", "m", "p", OK)
    index.record_url("http://x/", "s", "p")
    assert index.claim("s") and index.verdict("s", "m") is None and index.url_entry("http://x/") is None
    assert not index.claimed_elsewhere("s") and run(index.wait_verdict("s", "m", 1)) is None


@pytest.mark.parametrize("config, store, location", [
    (IndexConfig(), "/data/images", "/data/images.index.sqlite"),
    (IndexConfig(), "file:///data/images", "/data/images.index.sqlite"),
    (IndexConfig(), "s3://bucket/images", None),                     # remote store, no Redis: none
    (IndexConfig(location="off"), "/data/images", None),
    (IndexConfig(location="sqlite:///tmp/i.sqlite"), "/data/images", "sqlite:///tmp/i.sqlite"),
    (IndexConfig(redis_url="redis://h:6379/0"), "/data/images", "redis://h:6379/0"),
    (IndexConfig(location="off", redis_url="redis://h:6379/0"), "/data/images", None),
])
def test_where_the_index_lives(config, store, location):
    assert index_location(config, store) == location


def test_sqlite_location_opens_a_sqlite_index(tmp_path):
    index = open_index(f"sqlite://{tmp_path / 'i.sqlite'}", IndexConfig())
    assert isinstance(index, SqliteContentIndex) and (tmp_path / "i.sqlite").is_file()
    index.close()


@pytest.mark.slow
def test_redis_index_one_worker_claims_new_content(redis_url):
    url, _ = redis_url
    first, second = (RedisContentIndex.from_url(url, "t:index", claim_ttl=60) for _ in range(2))
    assert first.claim("c1") and first.claim("c1")            # re-claiming your own claim is fine
    assert not second.claim("c1") and second.claimed_elsewhere("c1")
    first.release("c1")
    assert second.claim("c1") and first.claimed_elsewhere("c1")
    second.record("c1", "m@1", "full/c1.png", OK)
    assert not first.claim("c1") and first.verdict("c1", "m@1") == OK and first.stored_path("c1")
    assert first.counts() == {"contents": 1, "urls": 0}


@pytest.mark.slow
def test_redis_index_waits_for_the_verdict_another_worker_produces(redis_url):
    url, _ = redis_url
    owner, waiter = (RedisContentIndex.from_url(url, "t:index") for _ in range(2))
    assert owner.claim("c2")

    async def wait_while_owner_labels():
        waiting = asyncio.ensure_future(waiter.wait_verdict("c2", "m@1", timeout=10))
        await asyncio.sleep(0.5)
        owner.record("c2", "m@1", "p", OK)
        return await waiting
    started = time.monotonic()
    assert run(wait_while_owner_labels()) == OK and time.monotonic() - started < 5
    assert run(waiter.wait_verdict("c3", "m@1", timeout=0.3)) is None     # nobody on it
