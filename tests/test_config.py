"""Settings: every MEDCRAWL_* default in settings.py, read in config.py only, validated once at start."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from medcrawl import config, settings as project_settings
from medcrawl.config import Config, IndexConfig, JsConfig, RedisConfig, model_location
from medcrawl.scaleout.addon import ScaleAddon

REPO = Path(__file__).resolve().parent.parent
MEDCRAWL_SETTINGS = sorted(name for name in vars(project_settings) if name.startswith("MEDCRAWL_"))


def project(**values) -> Settings:
    """The project's settings with ``values`` set as on the command line."""
    settings = Settings()
    settings.setmodule(project_settings, priority="project")
    settings.update(values, priority="cmdline")
    return settings


def test_every_setting_read_in_config_has_its_default_in_settings_py():
    read = set(re.findall(r'"(MEDCRAWL_[A-Z_]+)"', (REPO / "medcrawl" / "config.py").read_text()))
    read -= {"MEDCRAWL_SAMPLES_NPM"}                 # an environment variable of the sample builder
    assert read == set(MEDCRAWL_SETTINGS)


def test_no_other_module_reads_medcrawl_settings_or_their_environment():
    reads = re.compile(r"""(\.get\w*\(|environ\.get\(|getenv\()\s*["']MEDCRAWL_""")
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "medcrawl").rglob("*.py")
                 if p.name != "config.py" and reads.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_scrapy_tools_show_the_defaults():
    out = subprocess.run([sys.executable, "-m", "scrapy", "settings", "--get", "MEDCRAWL_BATCH_SIZE"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "32"


def test_defaults_of_the_settings_objects_are_those_of_settings_py():
    settings = project()
    crawl = Config.from_settings(settings)
    assert (crawl.batch_size, crawl.batch_max_wait, crawl.min_size) == (32, 2.0, 64)
    assert (crawl.pdf_max_images, crawl.dataset_dir, crawl.dataset_min_confidence) == (1000, None, None)
    assert crawl.max_pixels == project_settings.MEDCRAWL_MAX_PIXELS and crawl.offsite_media is True
    assert IndexConfig.from_settings(settings) == IndexConfig()
    assert RedisConfig.from_settings(settings) == RedisConfig(None, "medcrawl:%(spider)s")
    assert JsConfig.from_settings(settings) == JsConfig()
    assert Config.from_settings(Settings()).batch_size == 32      # no project settings: same defaults


def test_zero_means_no_limit_and_lists_are_cleaned():
    crawl = Config.from_settings(project(MEDCRAWL_MAX_PIXELS=0, MEDCRAWL_PDF_MAX_IMAGES="0"))
    assert crawl.max_pixels is None and crawl.pdf_max_images is None
    js = JsConfig.from_settings(project(MEDCRAWL_JS_DOMAINS=" A.org, ,b.org"))
    assert js.domains == ("a.org", "b.org") and js.wanted and not js.render_all
    assert IndexConfig.from_settings(project(MEDCRAWL_CONTENT_INDEX="OFF")).off


@pytest.mark.parametrize("name, value", [
    ("MEDCRAWL_BATCH_SIZE", 0), ("MEDCRAWL_BATCH_MAX_WAIT", 0), ("MEDCRAWL_MIN_SIZE", -1),
    ("MEDCRAWL_MAX_PIXELS", -5), ("MEDCRAWL_PDF_MAX_IMAGES", -1),
    ("MEDCRAWL_DATASET_MIN_CONFIDENCE", 1.5), ("MEDCRAWL_LOGSTATS_INTERVAL", -1),
    ("MEDCRAWL_INDEX_CLAIM_TTL", 0), ("MEDCRAWL_INDEX_WAIT", -1),
    ("MEDCRAWL_REDIS_URL", "localhost:6379"), ("MEDCRAWL_JS_WAIT", "idle"),
])
def test_a_bad_value_stops_the_crawl_at_start_naming_the_setting(name, value):
    with pytest.raises(ValueError, match=f"invalid medcrawl settings: {name} "):
        ScaleAddon().update_settings(project(**{name: value}))


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError) as exc:
        config.validate(project(MEDCRAWL_BATCH_SIZE=0, MEDCRAWL_MIN_SIZE=-1))
    assert "MEDCRAWL_BATCH_SIZE" in str(exc.value) and "MEDCRAWL_MIN_SIZE" in str(exc.value)


@pytest.mark.parametrize("name, value, kind", [
    ("MEDCRAWL_BATCH_SIZE", "many", "an integer"), ("MEDCRAWL_BATCH_MAX_WAIT", "soon", "a number"),
    ("MEDCRAWL_OFFSITE_MEDIA", "perhaps", "true or false"),
])
def test_a_value_of_the_wrong_type_names_the_setting(name, value, kind):
    with pytest.raises(ValueError, match=f"invalid medcrawl settings: {name} must be {kind}, not '{value}'"):
        config.validate(project(**{name: value}))


def test_read_once_per_crawler():
    crawler = get_crawler(settings_dict={"MEDCRAWL_BATCH_SIZE": 7})
    first = Config.from_crawler(crawler)
    assert first.batch_size == 7 and Config.from_crawler(crawler) is first
    assert Config.from_crawler(get_crawler()) is not first


def test_model_location_setting_then_environment_then_committed_model(monkeypatch):
    monkeypatch.delenv("MEDCRAWL_MODEL", raising=False)
    monkeypatch.delenv("MEDCRAWL_MODEL_ENGINE", raising=False)
    assert model_location() == (str(config.DEFAULT_MODEL_DIR), None)
    assert (config.DEFAULT_MODEL_DIR / "model.json").is_file()
    monkeypatch.setenv("MEDCRAWL_MODEL", "/models/from-env")
    monkeypatch.setenv("MEDCRAWL_MODEL_ENGINE", "litert")
    assert model_location() == ("/models/from-env", "litert")
    assert model_location("/models/given", "keras") == ("/models/given", "keras")
    crawl = Config.from_settings(project(MEDCRAWL_MODEL="/models/from-settings"))
    assert (crawl.model, crawl.model_engine) == ("/models/from-settings", "litert")
