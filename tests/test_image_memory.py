"""Legal-size images (under the pixel limit) decoded within bounded memory, measured in a subprocess.

Four 9000x9000 RGBA PNGs (81 Mpx each, 0.3 MB files) used to take 3.3 GB: every decoding thread
held the full image plus alpha-compositing and conversion copies. Now each image is reduced right
after decoding, the full-size pixels decoded at once are bounded across threads, and freed memory
goes back to the system after each batch. Figures vs the old path: bench/bench_memory.py --images.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.peak_memory import run_measured

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]   # slow: a memory measurement of legal-size images


def big_rgba_png(path: Path, side: int = 9000) -> None:
    """A side x side RGBA PNG with soft gradients and a transparent band (compresses to < 1 MB)."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    rgba = np.empty((side, side, 4), np.uint8)
    rgba[..., 0] = ramp[None, :]
    rgba[..., 1] = ramp[:, None]
    rgba[..., 2] = 128
    rgba[..., 3] = 255
    rgba[side // 3: side // 2, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(path, "PNG", compress_level=6)


def test_four_legal_size_pngs_stay_within_bounded_memory(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    big_rgba_png(folder / "a.png")
    for name in ("b.png", "c.png", "d.png"):
        shutil.copy(folder / "a.png", folder / name)
    proc, peak_mb = run_measured("from medcrawl.oneoff.cli import main\n"
                                 f"main(['classify', '--format', 'jsonl', '-q', {str(folder)!r}])",
                                 timeout=280)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["status"], r["width"], r["format"]) for r in rows] == [("ok", 9000, "PNG")] * 4, proc.stderr[-2000:]
    assert peak_mb < 1200, f"peak RSS {peak_mb:.0f} MB"        # 820 MB (model included); was 3300 MB
