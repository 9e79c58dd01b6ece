"""Shared fixtures: the one local HTTP server (a folder, or routes in memory), the real classifier loaded
once, model directories, Redis, the fixture site and the browser; the helpers behind them are in tests/support/."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import CHROMIUM
from tests.support.scale_helpers import free_port, wait_for
from tests.support.servers import ServerState, serve_folder

if TYPE_CHECKING:
    from tests.support.crawls import SiteServer


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path, ServerState]]:
    """A served empty folder for one test: (base URL, folder, request log)."""
    with serve_folder(tmp_path) as (base, state):
        yield base, tmp_path, state


@pytest.fixture
def redis_url(tmp_path):
    """A throw-away redis-server on 127.0.0.1 (no persistence), killed at the end: (URL, client)."""
    import redis


    if shutil.which("redis-server") is None:
        pytest.skip("Debian package redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def up() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return proc.poll() is not None
    try:
        wait_for(up, 20, what="redis-server")
        assert proc.poll() is None, "redis-server did not start"
        yield url, client
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def classifier():
    """The committed model (config.DEFAULT_MODEL_DIR, or $MEDCRAWL_MODEL), loaded once per session."""
    from medcrawl.config import model_location
    from medcrawl.model.classifier import Classifier

    return Classifier.load(*model_location())


@pytest.fixture(scope="session")
def modality_model(tmp_path_factory) -> Path:
    """A model directory with a modality head: the default model's, else one built for the session."""
    from tests.support.modality_model import modality_model_dir

    return modality_model_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def one_output_model(tmp_path_factory) -> Path:
    """A model without a modality head (random weights, 64 px): what the product does with one."""
    from tests.support.modality_model import build_one_output_model

    return build_one_output_model(tmp_path_factory.mktemp("one-output"))


@pytest.fixture(scope="session")
def serve() -> Callable:
    """The serve_folder context manager, for tests that build their own site."""
    return serve_folder


@pytest.fixture(scope="module")
def site_server(tmp_path_factory, serve) -> Iterator[SiteServer]:
    """The generated fixture site (tests/support/site_fixture.py), served for a module's crawls."""
    from tests.support.crawls import SLOW_TIMEOUT, SiteServer
    from tests.support.site_fixture import build_site

    root = tmp_path_factory.mktemp("site")
    with serve(root) as (base, state):
        site = build_site(root, base, base.replace("127.0.0.1", "localhost"))
        state.content_types.update(site.content_types)
        state.slow.update(site.slow)
        state.slow_seconds = SLOW_TIMEOUT + 3
        yield SiteServer(site, state)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()
