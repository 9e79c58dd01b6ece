"""The crash-safe JOBDIR journal in process: request states, written rows, run state, feed recovery."""

from __future__ import annotations

import json

from scrapy.settings import Settings

from medcrawl.files import repair_partial_line
from medcrawl.scaleout.journal import (DONE, QUEUED, STARTED, Journal, feed_row_keys, local_line_feeds,
                                       read_rows, row_key)


def test_a_journal_left_running_is_seen_as_a_crash(tmp_path):
    journal = Journal(tmp_path)
    assert not journal.crashed
    journal.set_state("running")
    journal.close()                                   # what a kill -9 leaves behind
    again = Journal(tmp_path)
    assert again.crashed
    again.finish()
    again.close()
    assert not Journal(tmp_path).crashed              # a clean stop


def test_request_states_only_move_forward(tmp_path):
    journal = Journal(tmp_path)
    journal.add_request("fp1", b"one")
    journal.add_request("fp2", b"two")
    journal.add_request("fp1", b"again")              # a request is journaled once
    journal.set_request_state("fp1", DONE)
    journal.set_request_state("fp1", STARTED)         # never back
    journal.set_request_state("fp2", STARTED)
    assert list(journal.requests()) == [(DONE, b"one"), (STARTED, b"two")]
    journal.finish()                                  # handed out and the crawl closed: done
    assert journal.counts() == {"queued": 0, "started": 0, "done": 2, "rows": 0}


def test_rows_are_recorded_once(tmp_path):
    journal = Journal(tmp_path)
    key = row_key("http://a/x.png", "http://a/")
    assert journal.add_rows([key, key, row_key("http://a/y.png", "http://a/")]) == 2
    assert journal.add_rows([key]) == 0
    assert journal.has_row(key) and not journal.has_row(row_key("http://a/x.png", "http://b/"))


def test_a_request_is_done_when_its_output_is_exhausted_and_handled(tmp_path):
    journal = Journal(tmp_path)
    journal.add_request("fp", b"r")
    row, link = object(), object()
    journal.completion.expect("fp", row)
    journal.completion.expect("fp", link)
    journal.completion.exhausted("fp")
    journal.completion.handled(row)
    assert list(journal.requests()) == [(QUEUED, b"r")]          # the link is not handled yet
    journal.completion.handled(object())                          # unrelated objects change nothing
    journal.completion.handled(link)
    assert list(journal.requests()) == [(DONE, b"r")]


def test_recovery_reads_complete_lines_of_appended_local_feeds(tmp_path):
    jsonl, csv_feed = tmp_path / "rows.jsonl", tmp_path / "rows.csv"
    jsonl.write_text(json.dumps({"image_url": "u1", "source_url": "s1"}) + "\n" + '{"image_url": "u2", "sou')
    csv_feed.write_text("image_url,source_url\nu3,s3\nimage_url,source_url\nu4,s4\nu5,s")
    settings = Settings({"FEEDS": {
        str(jsonl): {"format": "jsonlines"}, f"file://{csv_feed}": {"format": "csv"},
        str(tmp_path / "over.jsonl"): {"format": "jsonlines", "overwrite": True},   # -O: not appended
        "s3://bucket/rows.jsonl": {"format": "jsonlines"},                          # not local
    }})
    assert local_line_feeds(settings) == [(jsonl, "jsonl"), (csv_feed, "csv")]
    assert [r["image_url"] for r in read_rows(csv_feed, "csv")] == ["u3", "u4"]
    assert set(feed_row_keys(settings)) == {row_key("u1", "s1"), row_key("u3", "s3"), row_key("u4", "s4")}


def test_a_torn_last_line_is_cut(tmp_path):
    feed = tmp_path / "rows.jsonl"
    feed.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a"')
    assert repair_partial_line(feed) == 4 and feed.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    assert repair_partial_line(feed) == 0
    feed.write_bytes(b"no newline at all")
    assert repair_partial_line(feed) == 17 and feed.read_bytes() == b""
