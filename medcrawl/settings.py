"""Scrapy settings for a polite, site-wide image harvest. MEDCRAWL_* settings: medcrawl/config.py."""

from medcrawl import __version__
from medcrawl.items import ROW_FIELDS

BOT_NAME = "medcrawl"
SPIDER_MODULES = ["medcrawl.spiders"]
NEWSPIDER_MODULE = "medcrawl.spiders"

# Identify the crawler and respect the sites it visits.
USER_AGENT = f"medcrawl/{__version__} (+https://github.com/medcrawl/medcrawl)"
ROBOTSTXT_OBEY = True
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_TIMEOUT = 30
DOWNLOAD_MAXSIZE = 64 * 1024 * 1024
DOWNLOAD_WARNSIZE = 16 * 1024 * 1024
RETRY_TIMES = 2
# HTTP errors are counted (httperror/*, medcrawl/page_error/*) and never stop the crawl.
LOG_LEVEL = "INFO"

# Images: fetched through Scrapy's media machinery, stored once by content.
IMAGES_STORE = "images"
MEDIA_ALLOW_REDIRECTS = True
ITEM_PIPELINES = {
    "medcrawl.pipelines.store.ImageStorePipeline": 100,
    "medcrawl.pipelines.classify.ClassifyPipeline": 200,
    "medcrawl.pipelines.dataset.DatasetPipeline": 300,
    "medcrawl.pipelines.ReleaseBodyPipeline": 1000,
}
EXTENSIONS = {
    "medcrawl.extensions.HarvestStats": 500,
}
# Incremental re-runs (content index), crash-safe JOBDIR, Redis frontier, JavaScript pages:
# switched on by settings (MEDCRAWL_CONTENT_INDEX, JOBDIR, MEDCRAWL_REDIS_URL, -a js=true); docs/scale.md.
ADDONS = {"medcrawl.scale.ScaleAddon": 0}

# Feeds (-o/-O/FEEDS) carry exactly the row columns, never the internal image bytes.
FEED_EXPORT_FIELDS = list(ROW_FIELDS)
FEED_EXPORT_ENCODING = "utf-8"
