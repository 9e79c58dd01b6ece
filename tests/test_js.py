"""JavaScript pages through scrapy-playwright and the system Chromium (opt-in with -a js=true)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from scrapy import Request
from scrapy.http.request import NO_CALLBACK

from tests.support.servers import RecordingHandler, ServerState
from medcrawl.oneoff.localserver import folder_handler, serving
from medcrawl.scaleout.js import DEFAULT_CHROMIUM, JsPagesMiddleware
from tests.support.scale_helpers import duplicates, free_port, picture, read_jsonl, row_keys, run_crawl, stats_from_log

pytestmark = pytest.mark.timeout(180)

PAGE = """<!doctype html><html><head><title>Gallery</title></head><body>
<img src="img/static.png"><div id="gallery"></div>
<a href="more.html">more</a> <a href="missing.html">missing</a> <a href="http://127.0.0.1:{dead}/gone.html">gone</a>
<script>
function add(name) {{
  const img = document.createElement('img');
  img.src = 'img/' + name;
  document.getElementById('gallery').appendChild(img);
}}
add('early.png');                                       // while the page parses
window.addEventListener('load', () => setTimeout(() => {{
  fetch('list.json').then(r => r.json()).then(names => names.forEach(add));   // after load
}}, 300));
</script></body></html>"""
MORE = """<!doctype html><html><body><p>more</p>
<script>document.write('<img src="img/written.png">');</script></body></html>"""
JS_IMAGES = ("early.png", "late-0.png", "late-1.png", "written.png")


def build_js_site(root: Path) -> None:
    (root / "img").mkdir(parents=True)
    for i, name in enumerate(("static.png", *JS_IMAGES)):
        (root / "img" / name).write_bytes(picture(50_000 + i))
    (root / "index.html").write_text(PAGE.format(dead=free_port()))
    (root / "more.html").write_text(MORE)
    (root / "list.json").write_text('["late-0.png", "late-1.png"]')


@pytest.fixture(scope="module")
def js_site(tmp_path_factory, serve):
    root = tmp_path_factory.mktemp("jssite")
    build_js_site(root)
    with serve(root) as (base, state):
        yield base, state


needs_chromium = pytest.mark.skipif(not Path(DEFAULT_CHROMIUM).exists() and not shutil.which("chromium"),
                                    reason="Debian package chromium is not installed")


@pytest.mark.slow
@needs_chromium
def test_js_crawl_finds_images_inserted_by_scripts_and_closes_every_page(js_site, tmp_path):
    base, state = js_site
    state.requests.clear()
    proc = run_crawl(base, tmp_path, "-a", "js=true", "-s", f"IMAGES_STORE={tmp_path}/store",
                     "-o", f"{tmp_path}/rows.jsonl", "-s", "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT=20000")
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = read_jsonl(tmp_path / "rows.jsonl")
    expected = {(f"{base}/img/{name}", f"{base}/") for name in ("static.png", "early.png", "late-0.png",
                                                                  "late-1.png")}
    expected.add((f"{base}/img/written.png", f"{base}/more.html"))
    assert set(row_keys(rows)) == expected and not duplicates(row_keys(rows))
    assert all(r["status"] == "ok" for r in rows)

    stats = stats_from_log(proc.stderr)
    assert stats["playwright/page_count"] >= 3                        # index, more, missing (404)
    assert stats["playwright/page_count/closed"] == stats["playwright/page_count"]
    assert stats["medcrawl/page_error/http_404"] == 1 and stats["medcrawl/page_error/connection_refused"] == 1
    paths = state.paths()
    for name in ("static.png", *JS_IMAGES):                           # the browser fetched no image:
        assert paths.count(f"/img/{name}") == 1                       # only the crawl's own download
    assert paths.count("/list.json") == 1


INTERNAL_PAGE = """<!doctype html><html><body><img src="img/static.png"><div id="out"></div>
<script>
fetch('{internal}/img/secret.png').then(r => r.blob()).catch(() => null);       // an internal service
fetch('http://localhost:{port}/list.json').then(r => r.text())                    // the seed host's address
  .then(t => {{ document.getElementById('out').textContent = t; }});
</script>
<script src="{internal}/probe.js"></script></body></html>"""


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "allowed-network"])
def test_browser_never_reaches_internal_addresses_the_page_scripts_ask_for(tmp_path, allowed):
    """A script's fetch() and <script src> to 127.0.0.2 are aborted unless MEDCRAWL_ALLOWED_NETWORKS
    lets 127.0.0.2 through; the named host's address stays allowed."""
    site, internal = tmp_path / "site", tmp_path / "internal"
    (site / "img").mkdir(parents=True)
    (internal / "img").mkdir(parents=True)
    (site / "img" / "static.png").write_bytes(picture(60_000))
    (site / "list.json").write_text('["static.png"]')
    (internal / "img" / "secret.png").write_bytes(picture(60_001))
    (internal / "probe.js").write_text("document.title = 'probed';")
    site_state, internal_state = ServerState(), ServerState()
    with serving(folder_handler(internal, RecordingHandler, server_state=internal_state), "127.0.0.2") as other, \
            serving(folder_handler(site, RecordingHandler, server_state=site_state)) as base:
        (site / "index.html").write_text(INTERNAL_PAGE.format(internal=other, port=base.rsplit(":", 1)[1]))
        proc = run_crawl(base, tmp_path, "-a", "js=true", "-s", f"IMAGES_STORE={tmp_path}/store",
                         "-o", f"{tmp_path}/rows.jsonl", "-s", "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT=20000",
                         *(("-s", "MEDCRAWL_ALLOWED_NETWORKS=127.0.0.2/32") if allowed else ()))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(internal_state.paths()) == (["/img/secret.png", "/probe.js"] if allowed else [])
    assert site_state.paths().count("/list.json") == 1                 # via localhost: not refused
    assert [r["status"] for r in read_jsonl(tmp_path / "rows.jsonl")] == ["ok"]
    for path in ("/img/secret.png", "/probe.js"):
        refused = f"Refused {other}{path} in the browser: 127.0.0.2 is a loopback address"
        assert (refused in proc.stderr) is not allowed


@pytest.mark.slow
def test_plain_crawl_does_not_load_playwright_and_misses_script_images(js_site, tmp_path):
    base, _ = js_site
    proc = run_crawl(base, tmp_path, "-s", f"IMAGES_STORE={tmp_path}/store", "-o", f"{tmp_path}/rows.jsonl")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "playwright" not in proc.stderr.lower()
    assert set(row_keys(read_jsonl(tmp_path / "rows.jsonl"))) == {(f"{base}/img/static.png", f"{base}/")}


class FakeSpider:
    """Only the callback name matters to the routing."""

    def parse(self, response):
        pass

    def parse_pdf(self, response):
        pass


@pytest.mark.parametrize(("url", "callback", "rendered"), [
    ("https://news.example.org/a", "parse", True),
    ("https://example.org/b", "parse", True),
    ("https://example.org/doc.pdf", "parse_pdf", False),
    ("https://example.org/img.png", None, False),
    ("https://other.org/c", "parse", False),
])
def test_only_page_requests_on_js_domains_go_to_the_browser(url, callback, rendered):
    spider = FakeSpider()
    mw = JsPagesMiddleware(render_all=False, domains=["example.org"], wait_state="networkidle")
    request = Request(url, callback=getattr(spider, callback) if callback else NO_CALLBACK)
    mw.process_request(request)
    assert request.meta.get("playwright", False) is rendered
    assert ("playwright_page_methods" in request.meta) is rendered
