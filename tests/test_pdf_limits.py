"""PDF images over the pixel limit are refused from their dictionary, before any decoding.

A 0.9 MB PDF holding a 30000x30000 grey Flate image decodes to 900 MB (1.9 GB peak); JBIG2 and
JPX images are judged the same way. Peak memory is measured in a fresh subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcrawl.extract.pdf import extract_pdf_images, pdf_rows
from tests.support.pdf_bombs import flate_bomb, undecodable_bomb
from tests.support.peak_memory import run_measured


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "bomb.pdf"
    path.write_bytes(flate_bomb())
    return path


@pytest.mark.parametrize("filter_name", ["JBIG2Decode", "JPXDecode"])
def test_jbig2_and_jpx_images_are_judged_by_their_dictionary(filter_name):
    [image] = extract_pdf_images(undecodable_bomb(filter_name))
    assert (image.error, image.width, image.height, image.data) == ("decompression_bomb", 30000, 30000, b"")


def test_rows_say_decompression_bomb_and_keep_the_declared_size(bomb):
    [row] = pdf_rows(bomb.read_bytes(), "http://example.org/bomb.pdf")
    assert (row.status, row.error, row.width, row.height, row.body) == \
        ("error", "decompression_bomb", 30000, 30000, None)
    [image] = extract_pdf_images(undecodable_bomb("JBIG2Decode", side=2000), max_pixels=None)
    assert image.error == "" and image.width == 2000          # no limit: decoded as before


def peak_mb(code: str) -> tuple[str, float]:
    """Run Python code in a fresh process; (its stdout, its peak RSS in MB)."""
    proc, peak = run_measured(code)
    assert proc.returncode in (0, 2), proc.stderr[-2000:]
    return proc.stdout, peak


def test_extraction_peak_memory_stays_low(bomb):
    out, peak = peak_mb("from medcrawl.extract.pdf import extract_pdf_images\n"
                        f"print(extract_pdf_images(open({str(bomb)!r}, 'rb').read())[0].error)")
    assert out.strip() == "decompression_bomb"
    assert peak < 500, f"peak RSS {peak:.0f} MB"              # 150 MB; decoding it: about 1900 MB


def test_cli_reports_the_bomb_without_the_memory(bomb):
    out, peak = peak_mb("from medcrawl.oneoff.cli import main\n"
                        f"main(['classify', '--format', 'jsonl', '-q', {str(bomb)!r}])")
    assert peak < 800, f"peak RSS {peak:.0f} MB"              # 200 MB; decoding it: about 2 GB
    [row] = [json.loads(line) for line in out.splitlines()]
    assert (row["status"], row["error"], row["width"]) == ("error", "decompression_bomb", 30000)
