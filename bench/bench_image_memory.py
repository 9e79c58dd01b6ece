"""Peak memory of decoding legal-size images: medcrawl's path vs the full-size path it replaced.

Four 9000x9000 RGBA PNGs (81 Mpx each, under the 89 Mpx limit) and four 9000x9000 JPEGs, decoded
for a 128 px model input by four threads. Each arm runs in a fresh process that reports its own
peak RSS (``VmHWM`` of the process: ``ru_maxrss`` would include the parent's size) and the images/s:

  medcrawl    medcrawl.model.images.prepare on the shared decode threads (labelling._decode_map):
              JPEG draft, reduce right after decoding, a pixel budget across threads, heap trim
  full-size   the former path: decode in full, composite alpha / convert at full size, then resize
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench import common
from bench.common import Figure

REPO = Path(__file__).resolve().parent.parent
ARMS = ("medcrawl", "full-size")
TARGET_RATIO = 0.5
MEDCRAWL = """
import sys, time
from medcrawl.model.images import prepare
from medcrawl.model.labelling import _decode_map
from medcrawl.items import ImageItem
items = [ImageItem(body=open(p, 'rb').read()) for p in sys.argv[1:]]
start = time.perf_counter()
arrays = list(_decode_map(lambda item: prepare(item.body, 128)[1], items))
"""
FULL_SIZE = """
import io, sys, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
def old(data):
    img = Image.open(io.BytesIO(data))
    if img.format == 'JPEG':
        img.draft('RGB', (128, 128))
    img.load()
    if img.mode in ('RGBA', 'LA', 'P'):
        rgba = img.convert('RGBA')
        white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert('RGB')
    img = img.convert('RGB').resize((128, 128), Image.BILINEAR, reducing_gap=2.0)
    return np.asarray(img)
datas = [open(p, 'rb').read() for p in sys.argv[1:]]
start = time.perf_counter()
with ThreadPoolExecutor(4) as pool:
    arrays = list(pool.map(old, datas))
"""
REPORT = """
print(len(arrays), time.perf_counter() - start, [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")][0])
"""


def make_images(folder: Path, side: int) -> list[Path]:
    """Four RGBA PNGs and four JPEGs of side x side (gradients, a transparent band)."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    rgba = np.empty((side, side, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = ramp[None, :], ramp[:, None], 128, 255
    rgba[side // 3: side // 2, :, 3] = 0
    img = Image.fromarray(rgba, "RGBA")
    img.save(folder / "0.png", compress_level=6)
    img.convert("RGB").save(folder / "0.jpg", quality=85)
    paths = []
    for n in range(4):
        for ext in ("png", "jpg"):
            path = folder / f"{n}.{ext}"
            if n:
                shutil.copy(folder / f"0.{ext}", path)
            paths.append(path)
    return paths


def run_arm(arm: str, paths: list[Path]) -> tuple[float, float]:
    """(peak RSS in MB, images/s) of one arm in a fresh process."""
    code = (MEDCRAWL if arm == "medcrawl" else FULL_SIZE) + REPORT
    proc = subprocess.run([sys.executable, "-c", code, *map(str, paths)], cwd=REPO, text=True,
                          capture_output=True, timeout=600, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    if proc.returncode != 0:
        raise SystemExit(f"{arm} failed:\n{proc.stderr[-3000:]}")
    count, seconds, peak_kb = proc.stdout.split()[-3:]
    return int(peak_kb) / 1024, int(count) / float(seconds)


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--side", type=int, help="image side in pixels (default 9000; quick 2500)")
    args = p.parse_args(argv)
    side = args.side or (2500 if args.quick else 9000)
    work = Path(tempfile.mkdtemp(prefix="bench-image-memory-"))
    try:
        paths = make_images(work, side)
        peaks: dict[str, list[float]] = {arm: [] for arm in ARMS}
        rates: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for _ in range(common.rounds(args, full=2, quick=1)):
            for arm in ARMS:
                peak, rate = run_arm(arm, paths)
                print(f"{arm}: {len(paths)} images of {side}x{side}, peak RSS {peak:.0f} MB, "
                      f"{rate:.2f} images/s", flush=True)
                peaks[arm].append(peak)
                rates[arm].append(rate)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak = {arm: max(values) for arm, values in peaks.items()}
    figures = [Figure(f"{arm} peak RSS", peak[arm], "MB", higher_is_better=False) for arm in ARMS]
    figures += [Figure(f"{arm} rate", common.median(rates[arm]), "images/s") for arm in ARMS]
    figures += [Figure("medcrawl / full-size peak", peak["medcrawl"] / peak["full-size"], "x",
                       TARGET_RATIO, higher_is_better=False)]
    return common.report(f"legal-size image decoding, peak memory ({side}x{side})", figures, args,
                         {"side": side, "images": len(paths)})


if __name__ == "__main__":
    sys.exit(main())
