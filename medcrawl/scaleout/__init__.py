"""Harvest at scale (add-on, resume journal, content index, Redis, JavaScript pages); imports Scrapy and the shared modules, never oneoff."""
