"""Scrapy settings for a polite, site-wide image harvest, with every MEDCRAWL_* default (read in config.py)."""

from medcrawl import __version__
from medcrawl.items import ROW_FIELDS
from medcrawl.model import images

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
    "medcrawl.pipelines.panels.PanelPipeline": 250,
    "medcrawl.pipelines.dataset.DatasetPipeline": 300,
    "medcrawl.pipelines.release.ReleaseBodyPipeline": 1000,
}
EXTENSIONS = {
    "medcrawl.extensions.HarvestStats": 500,
    "medcrawl.extensions.HarvestReport": 510,      # only with MEDCRAWL_REPORT
    "medcrawl.extensions.FrozenStartup": 520,
}
# Crash-safe JOBDIR, Redis frontier, JavaScript pages: switched on by settings
# (JOBDIR, MEDCRAWL_REDIS_URL, -a js=true / MEDCRAWL_JS_DOMAINS); docs/scale.md.
ADDONS = {"medcrawl.scaleout.addon.ScaleAddon": 0}
# The crawl's own rules (medcrawl/middlewares.py, docs/limits.md): no private addresses but the
# hosts named and MEDCRAWL_ALLOWED_NETWORKS, checked on every hop; robots.txt for every request.
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "medcrawl.middlewares.PrivateAddressMiddleware": 60,
    "medcrawl.middlewares.StrictRobotsTxtMiddleware": 100,
    "medcrawl.middlewares.DownloadOutcomeMiddleware": 950,
}
# Crawl traps: followed links past a limit are dropped and named in the closing log (0: no limit).
# A first SIGTERM / Ctrl-C stops taking the spider's output; what is in the pipelines finishes.
SPIDER_MIDDLEWARES = {
    "medcrawl.middlewares.ShutdownMiddleware": 5,
    "medcrawl.traps.CrawlTrapMiddleware": 950,
}
DEPTH_LIMIT = 100                         # link hops from a seed

# Feeds (-o/-O/FEEDS) carry exactly the row columns, never the internal image bytes.
FEED_EXPORT_FIELDS = list(ROW_FIELDS)
FEED_EXPORT_ENCODING = "utf-8"

# medcrawl's own settings (docs/crawl.md, docs/scale.md), read and validated in medcrawl/config.py.
MEDCRAWL_MODEL = None                     # model dir; None: $MEDCRAWL_MODEL, else config.DEFAULT_MODEL_DIR
MEDCRAWL_MODEL_ENGINE = None              # keras | litert; None: $MEDCRAWL_MODEL_ENGINE, else the model's own
MEDCRAWL_BATCH_SIZE = 32                  # images per classifier batch
MEDCRAWL_BATCH_MAX_WAIT = 2.0             # seconds a partial batch may wait before it is labelled
MEDCRAWL_MIN_SIZE = 64                    # images with a side below this are skipped (too_small)
MEDCRAWL_MAX_PIXELS = images.DEFAULT_MAX_PIXELS  # decompression-bomb limit (0: none)
MEDCRAWL_PDF_MAX_IMAGES = 1000            # images taken from one PDF (0: no limit)
MEDCRAWL_DICOM_FRAMES = "middle"          # frames of a multi-frame DICOM: middle | all | N (spread evenly)
MEDCRAWL_DICOM_KEEP_ORIGINAL = False      # also store DICOM/NIfTI files as they came (patient data!)
MEDCRAWL_OFFSITE_MEDIA = True             # fetch images/PDFs from hosts outside allowed_domains
MEDCRAWL_DATASET_DIR = None               # write DIR/medical, DIR/non-medical, DIR/manifest.csv
MEDCRAWL_DATASET_MIN_CONFIDENCE = None    # below it: DIR/uncertain/; None: the model's dataset_min_confidence
MEDCRAWL_DATASET_LAYOUT = "flat"          # flat: DIR/medical/; modality: DIR/medical/<modality>/
MEDCRAWL_DATASET_MODALITIES: list[str] = []        # e.g. ct,mri: only images of these modalities enter the dataset
MEDCRAWL_DATASET_DEDUPE = "near"          # near | exact | off: one image per near-duplicate group (the largest)
MEDCRAWL_DATASET_SPLITS: list[str] = []    # e.g. train:0.8,validation:0.1,test:0.1: DIR/<split>/<label>/ by document
MEDCRAWL_DATASET_LICENSES: list[str] = []  # e.g. CC-BY-4.0,CC0-1.0: only images under these licences enter the dataset
MEDCRAWL_SPLIT_PANELS = False             # a compound figure's panels also become rows of their own
MEDCRAWL_LOGSTATS_INTERVAL = 60.0         # seconds between progress lines (0: off)
MEDCRAWL_REPORT = None                    # write the HTML report of the crawl's rows to this file at the end
MEDCRAWL_ALLOWED_NETWORKS: list[str] = []  # CIDR blocks crawled although private/loopback/link-local
MEDCRAWL_MAX_PAGES_PER_SITE = 10000       # pages (and PDFs) taken from one host
MEDCRAWL_MAX_PATTERN_CHAIN = 50           # pages in a row that each link to their own URL pattern
MEDCRAWL_MAX_PATTERN_URLS = 2000          # pages of one URL pattern (digits as N), e.g. /article/N
MEDCRAWL_CONTENT_INDEX = None             # None: next to a local store, or the harvest's Redis; "off": none
MEDCRAWL_INDEX_KEY = "medcrawl:index"     # Redis key prefix of the content index
MEDCRAWL_INDEX_CLAIM_TTL = 600            # seconds a worker's claim on new content lasts
MEDCRAWL_INDEX_WAIT = 120.0               # seconds to wait for a verdict another worker is producing
MEDCRAWL_REDIS_URL = None                 # redis://host:port/db: this crawl is a worker of a shared harvest
MEDCRAWL_HARVEST = "medcrawl:%(spider)s"  # Redis key prefix of the shared frontier
MEDCRAWL_JS = False                       # render every page in Chromium (also -a js=true)
MEDCRAWL_JS_DOMAINS: list[str] = []                # render only pages on these domains (sub-domains included)
MEDCRAWL_CHROMIUM_PATH = "/usr/bin/chromium"
MEDCRAWL_JS_WAIT = "networkidle"          # page load state to wait for before reading the page
