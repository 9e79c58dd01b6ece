"""Every MEDCRAWL_* setting, read once with typed getters (like scrapy-playwright's Config)."""

from __future__ import annotations

from dataclasses import dataclass

from scrapy.settings import BaseSettings

from medcrawl.images import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class Config:
    """The crawl's own settings; defaults here are the documented defaults."""

    model: str | None = None                  # model dir; None: $MEDCRAWL_MODEL or models/medcrawl-v1
    model_engine: str | None = None           # keras | litert; None: the model's own default
    batch_size: int = 32                      # images per classifier batch
    batch_max_wait: float = 2.0               # seconds a partial batch may wait before it is labelled
    min_size: int = 64                        # images with a side below this are skipped (too_small)
    max_pixels: int | None = DEFAULT_MAX_PIXELS   # decompression-bomb limit (0 in settings: none)
    pdf_max_images: int | None = 1000         # images taken from one PDF (0 in settings: no limit)
    offsite_media: bool = True                # fetch images/PDFs from hosts outside allowed_domains
    dataset_dir: str | None = None            # write DIR/medical, DIR/non-medical, DIR/manifest.csv
    dataset_min_confidence: float = 0.8       # only images labelled at least this confidently
    logstats_interval: float = 60.0           # seconds between progress lines (0: off)

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Config:
        """Read and validate the MEDCRAWL_* settings."""
        d = cls()
        config = cls(
            model=settings.get("MEDCRAWL_MODEL") or d.model,
            model_engine=settings.get("MEDCRAWL_MODEL_ENGINE") or d.model_engine,
            batch_size=settings.getint("MEDCRAWL_BATCH_SIZE", d.batch_size),
            batch_max_wait=settings.getfloat("MEDCRAWL_BATCH_MAX_WAIT", d.batch_max_wait),
            min_size=settings.getint("MEDCRAWL_MIN_SIZE", d.min_size),
            max_pixels=settings.getint("MEDCRAWL_MAX_PIXELS", d.max_pixels) or None,
            pdf_max_images=settings.getint("MEDCRAWL_PDF_MAX_IMAGES", d.pdf_max_images) or None,
            offsite_media=settings.getbool("MEDCRAWL_OFFSITE_MEDIA", d.offsite_media),
            dataset_dir=settings.get("MEDCRAWL_DATASET_DIR") or d.dataset_dir,
            dataset_min_confidence=settings.getfloat("MEDCRAWL_DATASET_MIN_CONFIDENCE",
                                                     d.dataset_min_confidence),
            logstats_interval=settings.getfloat("MEDCRAWL_LOGSTATS_INTERVAL", d.logstats_interval),
        )
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ValueError naming the setting when a value is out of range."""
        checks = {
            "MEDCRAWL_BATCH_SIZE must be >= 1": self.batch_size >= 1,
            "MEDCRAWL_BATCH_MAX_WAIT must be > 0": self.batch_max_wait > 0,
            "MEDCRAWL_MIN_SIZE must be >= 0": self.min_size >= 0,
            "MEDCRAWL_MAX_PIXELS must be >= 0": (self.max_pixels or 0) >= 0,
            "MEDCRAWL_PDF_MAX_IMAGES must be >= 0": (self.pdf_max_images or 0) >= 0,
            "MEDCRAWL_DATASET_MIN_CONFIDENCE must be within 0..1": 0 <= self.dataset_min_confidence <= 1,
            "MEDCRAWL_LOGSTATS_INTERVAL must be >= 0": self.logstats_interval >= 0,
        }
        problems = [message for message, ok in checks.items() if not ok]
        if problems:
            raise ValueError("; ".join(problems))
