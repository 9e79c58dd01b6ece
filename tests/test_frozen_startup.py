"""FrozenStartup: start-up's objects out of the garbage collector's sight while the spider runs."""

from __future__ import annotations

import gc

from scrapy.utils.test import get_crawler

from medcrawl.extensions import FrozenStartup
from medcrawl.settings import EXTENSIONS


def test_objects_frozen_while_the_spider_runs_and_back_after():
    assert "medcrawl.extensions.FrozenStartup" in EXTENSIONS
    ext = FrozenStartup.from_crawler(get_crawler())
    before = gc.get_freeze_count()
    ext.spider_opened()
    try:
        assert gc.get_freeze_count() > before
    finally:
        ext.spider_closed()
    assert gc.get_freeze_count() == 0
