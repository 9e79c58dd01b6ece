"""Deploy with scrapyd-deploy to a real scrapyd on 127.0.0.1 and run a harvest through schedule.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from medcrawl.config import DEFAULT_MODEL_DIR
from tests.support.scale_helpers import REPO, build_grid_site, duplicates, free_port, read_jsonl, row_keys, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]   # slow: scrapyd
DEPLOY = REPO / "deploy"


def api(base: str, endpoint: str, data: list[tuple[str, str]] | None = None) -> dict:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    with urllib.request.urlopen(f"{base}/{endpoint}", data=body, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def scrapyd(tmp_path_factory):
    """scrapyd on a free port with its own eggs/logs/items/dbs folders and config file."""
    home = tmp_path_factory.mktemp("scrapyd")
    port = free_port()
    (home / "scrapyd.conf").write_text(
        "[scrapyd]\nbind_address = 127.0.0.1\n"
        f"http_port = {port}\neggs_dir = {home}/eggs\nlogs_dir = {home}/logs\n"
        f"items_dir = {home}/items\ndbs_dir = {home}/dbs\npoll_interval = 0.5\nmax_proc = 2\n")
    env = {k: v for k, v in os.environ.items() if k != "MEDCRAWL_MODEL"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    log = open(home / "scrapyd.out", "w")
    proc = subprocess.Popen([sys.executable, "-m", "scrapyd"], cwd=home, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return api(base, "daemonstatus.json")["status"] == "ok"
        except OSError:
            return proc.poll() is not None
    try:
        wait_for(up, 60, what="scrapyd")
        assert proc.poll() is None, (home / "scrapyd.out").read_text()
        yield base, home
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def deploy(base: str, home: Path) -> subprocess.CompletedProcess:
    """scrapyd-deploy from deploy/, to a target named in a user-level scrapy.cfg (XDG_CONFIG_HOME)."""
    xdg = home / "xdg"
    xdg.mkdir(exist_ok=True)
    (xdg / "scrapy.cfg").write_text(f"[deploy:test]\nurl = {base}/\nproject = medcrawl\n")
    env = {**os.environ, "XDG_CONFIG_HOME": str(xdg)}
    scrapyd_deploy = Path(sys.executable).parent / "scrapyd-deploy"
    return subprocess.run([str(scrapyd_deploy), "test", "--version", "r1"], cwd=DEPLOY, env=env,
                          capture_output=True, text=True, timeout=180)


def run_job(base: str, data: list[tuple[str, str]], timeout: float = 150) -> dict:
    job = api(base, "schedule.json", [("project", "medcrawl"), ("spider", "site"), *data])
    assert job["status"] == "ok", job
    finished: dict = {}

    def done() -> bool:
        jobs = api(base, "listjobs.json?project=medcrawl")
        finished.update({j["id"]: j for j in jobs["finished"]})
        return job["jobid"] in finished
    wait_for(done, timeout, interval=0.5, what=f"job {job['jobid']}")
    return finished[job["jobid"]]


def test_deploy_schedule_and_harvest_through_scrapyd(scrapyd, tmp_path, serve):
    base, home = scrapyd
    deployed = deploy(base, home)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert json.loads(deployed.stdout)["spiders"] >= 1
    assert api(base, "listspiders.json?project=medcrawl")["spiders"] == ["site"]
    eggs = list((home / "eggs" / "medcrawl").glob("*.egg"))
    assert [e.name for e in eggs] == ["r1.egg"]

    root = tmp_path / "site"
    root.mkdir()
    site = build_grid_site(root, pages=4, per_page=3)
    with serve(root) as (site_base, state):
        common = [("start_urls", f"{site_base}/"), ("setting", "AUTOTHROTTLE_ENABLED=False"),
                  ("setting", f"IMAGES_STORE={tmp_path}/store"), ("setting", "MEDCRAWL_BATCH_MAX_WAIT=0.3")]
        # The egg holds code only: without MEDCRAWL_MODEL the job stops with the model error.
        failed = run_job(base, common)
        log = (home / "logs" / "medcrawl" / "site" / f"{failed['id']}.log").read_text()
        assert "medcrawl cannot start: no model at" in log and ".egg" in log
        job = run_job(base, [*common, ("setting", f"MEDCRAWL_MODEL={DEFAULT_MODEL_DIR}")])

    log = (home / "logs" / "medcrawl" / "site" / f"{job['id']}.log").read_text()
    assert "Spider closed (finished)" in log, log[-3000:]
    rows = read_jsonl(home / "items" / "medcrawl" / "site" / f"{job['id']}.jl")
    assert set(row_keys(rows)) == site.expected_rows(site_base) and not duplicates(row_keys(rows))
    assert all(r["status"] == "ok" and r["label"] and (tmp_path / "store" / r["path"]).is_file() for r in rows)
    meta = json.loads((DEFAULT_MODEL_DIR / "model.json").read_text())
    assert {r["model"] for r in rows} == {f"{meta['name']}@{meta['version']}"}
