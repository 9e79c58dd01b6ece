"""Backbone features for clean and augmented views, cached in chunks so a killed run resumes."""

from __future__ import annotations

import hashlib
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from medcrawl.model import images
from training.augment import augment

CHUNK = 1024


def load_view(path: str, size: int, view: int, seed: int) -> np.ndarray | None:
    """View 0 is exactly what the product sees; other views are augmented. None if unreadable."""
    try:
        data = Path(path).read_bytes()
        if view == 0:
            return images.prepare(data, size)[1]
        img, _ = images.open_image(data)
        rng = random.Random(f"{seed}:{view}:{path}")
        return images.resize_square(augment(images.to_rgb(img), rng), size)
    except (OSError, images.ImageError):
        return None


def cache_key(paths: list[str], size: int, seed) -> str:
    """Stable name for one set of paths at one size and seed."""
    digest = hashlib.sha256(f"multilevel:{size}:{seed}:".encode())
    for p in paths:
        digest.update(p.encode() + b"\0")
    return digest.hexdigest()[:16]


def extract_view(extractor, paths: list[str], size: int, view: int, seed: int,
                 cache: Path, pool: ThreadPoolExecutor, log=print) -> np.ndarray:
    """Features (N, D) for one view; rows of unreadable images are NaN."""
    final = cache / f"view{view}.npy"
    if final.exists():
        return np.load(final)
    parts = []
    for start in range(0, len(paths), CHUNK):
        part = cache / f"view{view}.part{start // CHUNK:05d}.npy"
        if not part.exists():
            batch = list(pool.map(lambda p: load_view(p, size, view, seed), paths[start:start + CHUNK]))
            ok = [i for i, a in enumerate(batch) if a is not None]
            feats = np.full((len(batch), extractor.output_shape[-1]), np.nan, np.float32)
            if ok:
                feats[ok] = extractor.predict(np.stack([batch[i] for i in ok]), batch_size=64, verbose=0)
            np.save(part, feats)
            log(f"  view {view}: {min(start + CHUNK, len(paths))}/{len(paths)} images")
        parts.append(np.load(part))
    feats = np.concatenate(parts)
    np.save(final, feats)
    for start in range(0, len(paths), CHUNK):
        (cache / f"view{view}.part{start // CHUNK:05d}.npy").unlink(missing_ok=True)
    return feats


def extract(paths: list[str], size: int, views: int, seed: int, cache_root: Path, log=print) -> np.ndarray:
    """Features (views, N, D) for every path, computed once and cached under cache_root."""
    from training.model import make_feature_extractor
    cache = cache_root / cache_key(paths, size, seed)
    cache.mkdir(parents=True, exist_ok=True)
    extractor = make_feature_extractor(size)
    with ThreadPoolExecutor(2) as pool:
        return np.stack([extract_view(extractor, paths, size, v, seed, cache, pool, log)
                         for v in range(views)])
