"""Every MEDCRAWL_* setting (and the model's environment variables), read here only, one object per concern.

Like scrapy-playwright's Config: ``X.from_settings(settings)`` reads and validates; ``X.from_crawler``
does it once per crawler. The defaults are those of ``medcrawl/settings.py``, so
``scrapy settings --get MEDCRAWL_...`` shows them. No Scrapy import: the CLI uses this module too.
"""

from __future__ import annotations

import functools
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medcrawl import settings as defaults
from medcrawl.addresses import networks
from medcrawl.labels import MODALITIES, OTHER_MODALITY
from medcrawl.model.classifier import Classifier, ModelError
from medcrawl.splits import Splits, parse_splits

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

DEDUPE_MODES = ("near", "exact", "off")
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "medcrawl-v3"
OFF = ("off", "none", "false", "0")
_READ: weakref.WeakKeyDictionary[Any, dict[type, Any]] = weakref.WeakKeyDictionary()


def model_location(model: str | os.PathLike | None = None,
                   engine: str | None = None) -> tuple[str, str | None]:
    """(model directory, engine): given values, else $MEDCRAWL_MODEL / $MEDCRAWL_MODEL_ENGINE,
    else DEFAULT_MODEL_DIR and None (the model's own engine)."""
    model = model or os.environ.get("MEDCRAWL_MODEL") or DEFAULT_MODEL_DIR
    return str(model), engine or os.environ.get("MEDCRAWL_MODEL_ENGINE") or None


@dataclass(frozen=True)
class LoadedModel:
    """The model of a crawl or a command, loaded once, with its two thresholds.

    ``decision_threshold``: the medical probability at or above which a row is labelled medical.
    ``dataset_min_confidence``: how confident a label must be for a dataset folder to file the image
    under it (below: ``uncertain/``); MEDCRAWL_DATASET_MIN_CONFIDENCE, else the model's own, else None.
    """

    classifier: Classifier
    decision_threshold: float
    dataset_min_confidence: float | None

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, engine: str | None = None,
             dataset_min_confidence: float | None = None) -> LoadedModel:
        """The model (given, else as ``model_location`` finds it), loaded once per process; ModelError."""
        classifier = _load_classifier(*model_location(model, engine))
        if dataset_min_confidence is None:
            dataset_min_confidence = model_dataset_min_confidence(classifier)
        return cls(classifier, classifier.threshold, dataset_min_confidence)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LoadedModel:
        """The crawl's model (MEDCRAWL_MODEL, MEDCRAWL_MODEL_ENGINE, MEDCRAWL_DATASET_MIN_CONFIDENCE)."""
        read = _READ.setdefault(crawler, {})
        if cls not in read:
            config = Config.from_crawler(crawler)
            read[cls] = cls.load(config.model, config.model_engine, config.dataset_min_confidence)
        return read[cls]

    def require_dataset_min_confidence(self) -> float:
        """The dataset folder's minimum confidence; ModelError when neither setting nor model names one."""
        if self.dataset_min_confidence is None:
            raise ModelError(f"model in {self.classifier.model_dir} names no dataset_min_confidence in "
                             "model.json: set MEDCRAWL_DATASET_MIN_CONFIDENCE")
        return self.dataset_min_confidence


_load_classifier = functools.lru_cache(maxsize=4)(Classifier.load)


def model_dataset_min_confidence(classifier: Classifier) -> float | None:
    """model.json's ``dataset_min_confidence`` (where the held-out ``medical/`` folder reached its purity
    target); None when it names none, ModelError when it is not a number within 0..1."""
    value = classifier.meta.get("dataset_min_confidence")
    if value is None:
        return None
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ModelError(f"model in {classifier.model_dir}: dataset_min_confidence in model.json must be "
                         f"a number within 0..1, not {value!r}")
    return float(value)


def samples_npm_dir() -> Path:
    """Where the npm sample packages are installed: $MEDCRAWL_SAMPLES_NPM, else ~/.cache/medcrawl/npm."""
    return Path(os.environ.get("MEDCRAWL_SAMPLES_NPM") or Path.home() / ".cache" / "medcrawl" / "npm")


KINDS = {"getint": "an integer", "getfloat": "a number", "getbool": "true or false", "getlist": "a list"}


def typed(settings: BaseSettings, getter: str, name: str, default: Any = None) -> Any:
    """``settings.<getter>(name, default)``; a value of the wrong type is a ValueError naming the setting."""
    try:
        return getattr(settings, getter)(name, *([] if default is None else [default]))
    except (TypeError, ValueError):
        raise ValueError(f"invalid medcrawl settings: {name} must be {KINDS[getter]}, "
                         f"not {settings.get(name)!r}") from None


def check(checks: dict[str, bool]) -> None:
    """Raise ValueError listing every failed check's message (each names its setting)."""
    problems = [message for message, ok in checks.items() if not ok]
    if problems:
        raise ValueError("invalid medcrawl settings: " + "; ".join(problems))


class _Section:
    """Read a concern's settings once per crawler."""

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Any:
        raise NotImplementedError

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        """The crawler's settings for this concern, read and validated on first use."""
        read = _READ.setdefault(crawler, {})
        if cls not in read:
            read[cls] = cls.from_settings(crawler.settings)
        return read[cls]


@dataclass(frozen=True)
class Config(_Section):
    """The crawl's own settings: model, batching, image limits, dataset, progress log."""

    model: str | None = None                  # model dir; from_settings: MEDCRAWL_MODEL, $MEDCRAWL_MODEL or DEFAULT_MODEL_DIR
    model_engine: str | None = None           # keras | litert; None: the model's own default
    batch_size: int = defaults.MEDCRAWL_BATCH_SIZE
    batch_max_wait: float = defaults.MEDCRAWL_BATCH_MAX_WAIT
    min_size: int = defaults.MEDCRAWL_MIN_SIZE
    max_pixels: int | None = defaults.MEDCRAWL_MAX_PIXELS
    pdf_max_images: int | None = defaults.MEDCRAWL_PDF_MAX_IMAGES
    offsite_media: bool = defaults.MEDCRAWL_OFFSITE_MEDIA
    dataset_dir: str | None = defaults.MEDCRAWL_DATASET_DIR
    dataset_min_confidence: float | None = defaults.MEDCRAWL_DATASET_MIN_CONFIDENCE   # None: the model's
    dataset_layout: str = defaults.MEDCRAWL_DATASET_LAYOUT          # flat | modality (DIR/medical/<modality>/)
    dataset_modalities: tuple[str, ...] = tuple(defaults.MEDCRAWL_DATASET_MODALITIES)   # () : every image
    dataset_dedupe: str = defaults.MEDCRAWL_DATASET_DEDUPE          # near | exact | off
    dataset_splits: Splits = ()                                     # ((name, share), ...); () : no splits
    dataset_licenses: tuple[str, ...] = tuple(defaults.MEDCRAWL_DATASET_LICENSES)   # () : any licence
    split_panels: bool = defaults.MEDCRAWL_SPLIT_PANELS
    logstats_interval: float = defaults.MEDCRAWL_LOGSTATS_INTERVAL
    report: str | None = defaults.MEDCRAWL_REPORT    # HTML report of the crawl, written when it ends

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Config:
        """Read and validate the MEDCRAWL_* settings of the crawl."""
        d = cls()
        model, engine = model_location(settings.get("MEDCRAWL_MODEL"), settings.get("MEDCRAWL_MODEL_ENGINE"))
        config = cls(
            model=model,
            model_engine=engine,
            batch_size=typed(settings, "getint", "MEDCRAWL_BATCH_SIZE", d.batch_size),
            batch_max_wait=typed(settings, "getfloat", "MEDCRAWL_BATCH_MAX_WAIT", d.batch_max_wait),
            min_size=typed(settings, "getint", "MEDCRAWL_MIN_SIZE", d.min_size),
            max_pixels=typed(settings, "getint", "MEDCRAWL_MAX_PIXELS", d.max_pixels) or None,
            pdf_max_images=typed(settings, "getint", "MEDCRAWL_PDF_MAX_IMAGES", d.pdf_max_images) or None,
            offsite_media=typed(settings, "getbool", "MEDCRAWL_OFFSITE_MEDIA", d.offsite_media),
            dataset_dir=settings.get("MEDCRAWL_DATASET_DIR") or d.dataset_dir,
            dataset_min_confidence=None if settings.get("MEDCRAWL_DATASET_MIN_CONFIDENCE") is None else
            typed(settings, "getfloat", "MEDCRAWL_DATASET_MIN_CONFIDENCE"),
            dataset_layout=(settings.get("MEDCRAWL_DATASET_LAYOUT") or d.dataset_layout).strip().lower(),
            dataset_modalities=tuple(m.strip().lower() for m in settings.getlist("MEDCRAWL_DATASET_MODALITIES")
                                     if m.strip()),
            dataset_dedupe=(settings.get("MEDCRAWL_DATASET_DEDUPE") or d.dataset_dedupe).strip().lower(),
            dataset_splits=dataset_splits(typed(settings, "getlist", "MEDCRAWL_DATASET_SPLITS")),
            dataset_licenses=tuple(x.strip() for x in typed(settings, "getlist", "MEDCRAWL_DATASET_LICENSES")
                                   if x.strip()),
            split_panels=typed(settings, "getbool", "MEDCRAWL_SPLIT_PANELS", d.split_panels),
            logstats_interval=typed(settings, "getfloat", "MEDCRAWL_LOGSTATS_INTERVAL", d.logstats_interval),
            report=settings.get("MEDCRAWL_REPORT") or d.report,
        )
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ValueError naming the setting when a value is out of range."""
        check({
            "MEDCRAWL_BATCH_SIZE must be >= 1": self.batch_size >= 1,
            "MEDCRAWL_BATCH_MAX_WAIT must be > 0": self.batch_max_wait > 0,
            "MEDCRAWL_MIN_SIZE must be >= 0": self.min_size >= 0,
            "MEDCRAWL_MAX_PIXELS must be >= 0": (self.max_pixels or 0) >= 0,
            "MEDCRAWL_PDF_MAX_IMAGES must be >= 0": (self.pdf_max_images or 0) >= 0,
            "MEDCRAWL_DATASET_MIN_CONFIDENCE must be within 0..1":
                self.dataset_min_confidence is None or 0 <= self.dataset_min_confidence <= 1,
            "MEDCRAWL_DATASET_LAYOUT must be flat or modality": self.dataset_layout in ("flat", "modality"),
            f"MEDCRAWL_DATASET_MODALITIES: unknown {', '.join(unknown_modalities(self.dataset_modalities))} "
            f"(choose from {', '.join(MODALITIES + (OTHER_MODALITY,))})":
                not unknown_modalities(self.dataset_modalities),
            "MEDCRAWL_DATASET_DEDUPE must be near, exact or off": self.dataset_dedupe in DEDUPE_MODES,
            "MEDCRAWL_LOGSTATS_INTERVAL must be >= 0": self.logstats_interval >= 0,
        })


def dataset_splits(values: list[str]) -> Splits:
    """MEDCRAWL_DATASET_SPLITS read, or a ValueError naming the setting."""
    try:
        return parse_splits(values)
    except ValueError as exc:
        raise ValueError(f"invalid medcrawl settings: MEDCRAWL_DATASET_SPLITS: {exc}") from None


def unknown_modalities(names: tuple[str, ...] | list[str]) -> list[str]:
    """The names that are not a modality a row can have."""
    return [n for n in names if n not in MODALITIES and n != OTHER_MODALITY]


@dataclass(frozen=True)
class MedicalConfig(_Section):
    """DICOM and NIfTI files: which DICOM frames become rows; whether the store keeps the files."""

    dicom_frames: str = defaults.MEDCRAWL_DICOM_FRAMES
    keep_original: bool = defaults.MEDCRAWL_DICOM_KEEP_ORIGINAL

    @staticmethod
    def frames_choice(value: Any) -> str:
        """``middle``, ``all`` or a frame count >= 1, normalised; ValueError otherwise."""
        frames = str(value).strip().lower()
        if frames in ("middle", "all") or (frames.isdigit() and int(frames) >= 1):
            return frames
        raise ValueError(f"{value!r} is not middle, all or a number of frames >= 1")

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> MedicalConfig:
        d = cls()
        try:
            frames = cls.frames_choice(settings.get("MEDCRAWL_DICOM_FRAMES") or d.dicom_frames)
        except ValueError as exc:
            raise ValueError(f"invalid medcrawl settings: MEDCRAWL_DICOM_FRAMES: {exc}") from None
        return cls(dicom_frames=frames,
                   keep_original=settings.getbool("MEDCRAWL_DICOM_KEEP_ORIGINAL", d.keep_original))


@dataclass(frozen=True)
class RedisConfig(_Section):
    """A distributed harvest: the shared Redis and the harvest's key prefix."""

    url: str | None = defaults.MEDCRAWL_REDIS_URL
    harvest: str = defaults.MEDCRAWL_HARVEST

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RedisConfig:
        d = cls()
        config = cls(url=settings.get("MEDCRAWL_REDIS_URL") or d.url,
                     harvest=settings.get("MEDCRAWL_HARVEST") or d.harvest)
        check({"MEDCRAWL_REDIS_URL must start with redis://, rediss:// or unix://":
               not config.url or config.url.startswith(("redis://", "rediss://", "unix://"))})
        return config


@dataclass(frozen=True)
class IndexConfig(_Section):
    """The content index: where it lives (as set; see contentindex.index_location) and its Redis knobs."""

    location: str | None = defaults.MEDCRAWL_CONTENT_INDEX   # None: automatic; "off": no index
    redis_url: str | None = defaults.MEDCRAWL_REDIS_URL
    key: str = defaults.MEDCRAWL_INDEX_KEY
    claim_ttl: int = defaults.MEDCRAWL_INDEX_CLAIM_TTL
    wait: float = defaults.MEDCRAWL_INDEX_WAIT

    @property
    def off(self) -> bool:
        return (self.location or "").lower() in OFF

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> IndexConfig:
        d = cls()
        config = cls(location=(settings.get("MEDCRAWL_CONTENT_INDEX") or "").strip() or d.location,
                     redis_url=RedisConfig.from_settings(settings).url,
                     key=settings.get("MEDCRAWL_INDEX_KEY") or d.key,
                     claim_ttl=typed(settings, "getint", "MEDCRAWL_INDEX_CLAIM_TTL", d.claim_ttl),
                     wait=typed(settings, "getfloat", "MEDCRAWL_INDEX_WAIT", d.wait))
        check({"MEDCRAWL_INDEX_CLAIM_TTL must be >= 1": config.claim_ttl >= 1,
               "MEDCRAWL_INDEX_WAIT must be >= 0": config.wait >= 0})
        return config


@dataclass(frozen=True)
class JsConfig(_Section):
    """JavaScript pages: render all pages or those of some domains, with which Chromium, until when."""

    render_all: bool = defaults.MEDCRAWL_JS
    domains: tuple[str, ...] = field(default_factory=tuple)
    chromium: str = defaults.MEDCRAWL_CHROMIUM_PATH
    wait: str = defaults.MEDCRAWL_JS_WAIT

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> JsConfig:
        d = cls()
        config = cls(render_all=typed(settings, "getbool", "MEDCRAWL_JS", d.render_all),
                     domains=tuple(x.strip().lower() for x in typed(settings, "getlist", "MEDCRAWL_JS_DOMAINS")
                                   if x.strip()),
                     chromium=settings.get("MEDCRAWL_CHROMIUM_PATH") or d.chromium,
                     wait=settings.get("MEDCRAWL_JS_WAIT") or d.wait)
        check({"MEDCRAWL_JS_WAIT must be load, domcontentloaded or networkidle":
               config.wait in ("load", "domcontentloaded", "networkidle")})
        return config

    @property
    def wanted(self) -> bool:
        """Some pages are rendered (before the spider's ``-a js=true`` is counted)."""
        return self.render_all or bool(self.domains)


@dataclass(frozen=True)
class LimitsConfig(_Section):
    """What a crawl may reach (docs/limits.md): networks allowed although not public, crawl-trap limits."""

    allowed_networks: tuple = ()              # ip_network objects, from MEDCRAWL_ALLOWED_NETWORKS
    max_pages_per_site: int = defaults.MEDCRAWL_MAX_PAGES_PER_SITE
    max_pattern_chain: int = defaults.MEDCRAWL_MAX_PATTERN_CHAIN
    max_pattern_urls: int = defaults.MEDCRAWL_MAX_PATTERN_URLS

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> LimitsConfig:
        d = cls()
        try:
            allowed = networks(typed(settings, "getlist", "MEDCRAWL_ALLOWED_NETWORKS"))
        except ValueError as exc:
            raise ValueError(f"invalid medcrawl settings: MEDCRAWL_ALLOWED_NETWORKS: {exc}") from None
        config = cls(allowed_networks=allowed,
                     max_pages_per_site=typed(settings, "getint", "MEDCRAWL_MAX_PAGES_PER_SITE",
                                              d.max_pages_per_site),
                     max_pattern_chain=typed(settings, "getint", "MEDCRAWL_MAX_PATTERN_CHAIN",
                                             d.max_pattern_chain),
                     max_pattern_urls=typed(settings, "getint", "MEDCRAWL_MAX_PATTERN_URLS",
                                            d.max_pattern_urls))
        check({f"{name} must be >= 0 (0: no limit)": value >= 0 for name, value in (
            ("MEDCRAWL_MAX_PAGES_PER_SITE", config.max_pages_per_site),
            ("MEDCRAWL_MAX_PATTERN_CHAIN", config.max_pattern_chain),
            ("MEDCRAWL_MAX_PATTERN_URLS", config.max_pattern_urls))})
        return config


def validate(settings: BaseSettings) -> None:
    """Read every concern once, so a wrong value stops the crawl at start with a clear message."""
    for section in (Config, MedicalConfig, RedisConfig, IndexConfig, JsConfig, LimitsConfig):
        section.from_settings(settings)
