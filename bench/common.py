"""Shared benchmark helpers: options, generated inputs, timing rounds, the figures table."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from medcrawl.config import DEFAULT_MODEL_DIR

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
GENERATOR_VERSION = 1          # bump when generated content changes, so caches are rebuilt
CACHE_ROOT = Path(os.environ.get("MEDCRAWL_BENCH_CACHE")
                  or Path(tempfile.gettempdir()) / "medcrawl-bench")


@dataclass
class Figure:
    """One reported number, with its target (``None``: informational) and direction."""

    name: str
    value: float
    unit: str = ""
    target: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"{'>=' if self.higher_is_better else '<='} {fmt(self.target)}"


def fmt(value: float) -> str:
    """A number with as many digits as it deserves."""
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark script takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds (used by tests)")
    p.add_argument("--rounds", type=int, help="timing rounds (the median is reported)")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--model", metavar="DIR", help="model dir (default: $MEDCRAWL_MODEL or "
                   f"models/{DEFAULT_MODEL_DIR.name})")
    return p


def rounds(args, full: int, quick: int = 1) -> int:
    return args.rounds or (quick if args.quick else full)


def median(values) -> float:
    return float(statistics.median(values))


def rate_ratio(rates: dict[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of the per-round ratio num/den (rounds pair up the noise)."""
    return median([a / b for a, b in zip(rates[num], rates[den])])


def timed(fn, *a, **kw) -> tuple[float, object]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn(*a, **kw)
    return time.perf_counter() - start, result


def machine() -> dict:
    """What the numbers were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal:")), 0)
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gb": round(mem_kb / 2 ** 20, 1),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "python": platform.python_version(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def report(title: str, figures: list[Figure], args, extra: dict | None = None) -> int:
    """Print the figures table (and JSON if asked); the exit status honours ``--check``."""
    m = machine()
    print(f"\n== {title}{' (quick)' if args.quick else ''} ==")
    print(f"machine: {m['nproc']} x {m['cpu']}, {m['ram_gb']} GB RAM, load {m['load']}")
    width = max(len(f.name) for f in figures)
    print(f"{'figure':<{width}}  {'value':>10}  {'unit':<10}  {'target':<10}  met")
    for f in figures:
        met = {None: "", True: "yes", False: "NO"}[f.met]
        note = f"  ({f.note})" if f.note else ""
        print(f"{f.name:<{width}}  {fmt(f.value):>10}  {f.unit:<10}  {f.target_text():<10}  {met}{note}")
    if args.json:
        payload = {"title": title, "quick": args.quick, "machine": m, "argv": sys.argv,
                   "figures": [asdict(f) | {"met": f.met} for f in figures], **(extra or {})}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    missed = [f.name for f in figures if f.met is False]
    if missed:
        print(f"missed: {', '.join(missed)}")
    return 1 if args.check and missed else 0


class ImageFactory:
    """Realistic-ish test images: smooth gradients, shapes, blur and sensor noise (photos, JPEG)
    or flat graphics with a noisy inset (diagrams/screenshots, PNG); each one a distinct crop."""

    def __init__(self, seed: int = 0, canvas: tuple[int, int] = (1400, 1100), pool: int = 6):
        self.rng = np.random.default_rng(seed)
        self.canvas = canvas
        self.photos = [self._photo(*canvas) for _ in range(pool)]
        self.graphics = [self._graphic(*canvas) for _ in range(pool)]

    def _shapes(self, w: int, h: int) -> Image.Image:
        c = self.rng.uniform(0, 255, (3, 3)).astype(np.float32)
        gx = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        gy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = Image.fromarray(np.clip(c[:, 0] + (c[:, 1] - c[:, 0]) * gx + (c[:, 2] - c[:, 0]) * gy,
                                      0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(40):
            x0, y0 = int(self.rng.integers(0, w)), int(self.rng.integers(0, h))
            box = (x0, y0, x0 + int(self.rng.integers(10, w // 3)), y0 + int(self.rng.integers(10, h // 3)))
            colour = tuple(int(v) for v in self.rng.integers(0, 255, 3))
            shape = (draw.ellipse, draw.rectangle, draw.line)[int(self.rng.integers(0, 3))]
            shape(box, fill=colour, **({"width": 4} if shape == draw.line else {}))
        return img

    def _photo(self, w: int, h: int) -> Image.Image:
        from PIL import ImageFilter
        arr = np.asarray(self._shapes(w, h).filter(ImageFilter.BoxBlur(3)), np.float32)
        arr = arr + self.rng.normal(0, 5, (h, w, 1)).astype(np.float32)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))

    def _graphic(self, w: int, h: int) -> Image.Image:
        arr = np.array(self._shapes(w, h))
        ih, iw = h // 3, w // 3
        y, x = int(self.rng.integers(0, h - ih)), int(self.rng.integers(0, w - iw))
        inset = arr[y:y + ih, x:x + iw].astype(np.float32) + self.rng.normal(0, 6, (ih, iw, 1))
        arr[y:y + ih, x:x + iw] = np.clip(inset, 0, 255).astype(np.uint8)
        return Image.fromarray(arr)

    def image(self, w: int, h: int, fmt: str) -> Image.Image:
        """A w x h crop of a pooled canvas, randomly flipped: JPEG gets photos, PNG graphics."""
        pool = self.photos if fmt == "JPEG" else self.graphics
        src = pool[int(self.rng.integers(0, len(pool)))]
        w, h = min(w, self.canvas[0]), min(h, self.canvas[1])
        x, y = int(self.rng.integers(0, self.canvas[0] - w + 1)), int(self.rng.integers(0, self.canvas[1] - h + 1))
        img = src.crop((x, y, x + w, y + h))
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if self.rng.random() < 0.5 else img

    def encode(self, w: int, h: int, fmt: str) -> bytes:
        """Encoded bytes of a fresh image: JPEG quality 88 or PNG at zlib level 6."""
        buf = io.BytesIO()
        img = self.image(w, h, fmt)
        img.save(buf, fmt, **({"quality": 88} if fmt == "JPEG" else {"compress_level": 6}))
        return buf.getvalue()


def image_formats(n: int, png_share: float = 0.25) -> list[str]:
    """n formats, evenly interleaved, with ``png_share`` PNGs and the rest JPEG."""
    step = round(1 / png_share) if png_share else 0
    return ["PNG" if step and i % step == step - 1 else "JPEG" for i in range(n)]


def cached_dir(name: str, params: dict) -> tuple[Path, bool]:
    """A cache folder for generated inputs keyed by their parameters; (path, already complete)."""
    key = hashlib.sha256(json.dumps({**params, "v": GENERATOR_VERSION}, sort_keys=True).encode())
    path = CACHE_ROOT / f"{name}-{key.hexdigest()[:12]}"
    return path, (path / ".complete").exists()


def mark_complete(path: Path) -> None:
    (path / ".complete").write_text("ok\n")


def write_images(n: int, size: tuple[int, int] = (1000, 800), png_share: float = 0.25,
                 seed: int = 0) -> list[Path]:
    """n generated image files (cached between runs), JPEG and PNG interleaved."""
    folder, done = cached_dir("images", {"n": n, "size": size, "png": png_share, "seed": seed})
    formats = image_formats(n, png_share)
    paths = [folder / f"img{i:05d}.{'png' if f == 'PNG' else 'jpg'}" for i, f in enumerate(formats)]
    if not done:
        folder.mkdir(parents=True, exist_ok=True)
        factory = ImageFactory(seed)
        for path, fmt in zip(paths, formats):
            path.write_bytes(factory.encode(*size, fmt))
        mark_complete(folder)
    return paths
