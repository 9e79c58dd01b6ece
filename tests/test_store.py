"""The image store's bookkeeping on a real file store and SQLite index: an index entry whose file
is gone from the store is noticed, fetched again and stored anew (the emptied store of a re-run)."""

from __future__ import annotations


from scrapy import Spider
from scrapy.pipelines.files import FSFilesStore
from scrapy.pipelines.media import MediaPipeline
from scrapy.utils.test import get_crawler

from medcrawl.pipelines.expiry import UrlExpiry
from medcrawl.pipelines.store import ContentStore
from medcrawl.scaleout.contentindex import SqliteContentIndex
from tests.support.loops import run

OK = {"status": "ok", "error": "", "label": "medical", "confidence": 0.93}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def first_run(tmp_path):
    """A store and index as a finished crawl leaves them: one image stored, its URL and verdict indexed."""
    stats = get_crawler(Spider).stats
    store, index = FSFilesStore(str(tmp_path / "store")), SqliteContentIndex(tmp_path / "store.index.sqlite")
    info = MediaPipeline.SpiderInfo(Spider("site"))
    content = ContentStore(store, stats, index)
    sha, path = run(content.persist(PNG, info))
    index.record(sha, "m@1", path, OK)
    index.record_url("http://x/a.png", sha, path)
    return store, index, info, sha, path


def next_run(store, index):
    stats = get_crawler(Spider).stats
    content = ContentStore(store, stats, index)
    return content, UrlExpiry(index, content.holds, stats, 90, lambda: "m@1"), stats


def test_a_stored_url_is_up_to_date(tmp_path):
    store, index, info, sha, path = first_run(tmp_path)
    content, expiry, stats = next_run(store, index)
    assert run(expiry.known("http://x/a.png", info)) == {"url": "http://x/a.png", "path": path,
                                                        "checksum": sha, "status": "uptodate"}
    assert run(content.persist(PNG, info)) == (sha, path)
    assert stats.get_value("medcrawl/store/duplicate") == 1 and stats.get_value("medcrawl/stored") is None


def test_an_index_entry_whose_file_is_gone_is_fetched_and_stored_again(tmp_path, caplog):
    store, index, info, sha, path = first_run(tmp_path)
    (tmp_path / "store" / path).unlink()                     # the images deleted, the index kept
    content, expiry, stats = next_run(store, index)
    assert run(expiry.known("http://x/a.png", info)) is None             # download it again
    assert run(content.persist(PNG, info)) == (sha, path)                # and store it again
    assert (tmp_path / "store" / path).read_bytes() == PNG
    assert stats.get_value("medcrawl/stored") == 1 and stats.get_value("medcrawl/index/file_missing") == 2
    assert [r.message for r in caplog.records if "store has no such file" in r.message] != []
