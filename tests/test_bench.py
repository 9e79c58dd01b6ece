"""Every benchmark script runs in --quick mode and prints its figures (timings are not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import common
from bench.run_all import module

REPO = Path(__file__).resolve().parent.parent
FIGURES = {
    "bench_classify.py": ["product-b1 rate", "product-b16 rate", "product-b64 rate", "floor rate",
                          "naive rate", "/ floor", "/ naive"],
    "bench_model.py": ["keras rate b32", "litert rate b32", "litert / keras", "keras file size",
                       "litert file size", "keras load time", "litert load time"],
    "bench_modality.py": ["medical output only", "medical + modality", "with head / without"],
    "bench_pdf.py": ["product rate", "pymupdf-extract_image rate", "product / pymupdf-extract_image"],
    "bench_medical.py": ["product rate", "decode floor rate", "product / decode floor"],
    "bench_report.py": ["report rate cold", "report rate warm", "thumbnail rate pool",
                        "thumbnail rate 1 thread", "pool / 1 thread"],
    "bench_crawl.py": ["medcrawl rate", "plain rate", "medcrawl / plain", "medcrawl peak RSS"],
    "bench_image_memory.py": ["medcrawl peak RSS", "full-size peak RSS", "medcrawl / full-size peak"],
    "bench_memory.py": ["medcrawl peak RSS at 30", "medcrawl peak RSS at 120", "medcrawl 120 / 30",
                        "plain peak RSS at 120"],
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(FIGURES))
def test_quick_run_prints_its_figures(script, tmp_path):
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, "-m", module(script), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for name in FIGURES[script]:
        assert name in proc.stdout, f"{script} did not print {name!r}:\n{proc.stdout}"
    figures = json.loads(out.read_text())["figures"]
    assert all(f["value"] > 0 for f in figures), figures
    assert any(f["target"] is not None for f in figures)


def test_check_exits_1_on_a_missed_target(tmp_path):
    """--check turns a missed target into exit status 1; without it a miss is only reported."""
    args = common.parser("t").parse_args(["--check"])
    missed = [common.Figure("x rate", 1.0, "images/s", target=2.0)]
    met = [common.Figure("x rate", 3.0, "images/s", target=2.0)]
    assert common.report("t", missed, args) == 1
    assert common.report("t", met, args) == 0
    assert common.report("t", missed, common.parser("t").parse_args([])) == 0


def test_generated_images_are_realistic_not_noise():
    """JPEG photos compress to well under 1 byte a pixel; PNG graphics under 3 (pure noise: ~3)."""
    factory = common.ImageFactory(seed=5, canvas=(400, 300), pool=1)
    jpeg, png = factory.encode(320, 240, "JPEG"), factory.encode(320, 240, "PNG")
    assert jpeg[:3] == b"\xff\xd8\xff" and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(jpeg) < 320 * 240 and len(png) < 320 * 240 * 2
    assert factory.encode(320, 240, "JPEG") != jpeg          # each image is a distinct crop
