"""Backbone features for clean and augmented views, cached in chunks so a killed run resumes."""

from __future__ import annotations

import hashlib
import os
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


def cache_key(paths: list[str], size: int, seed, backbone: str = "lite0") -> str:
    """Stable name for one set of paths at one size and seed (and backbone, other than Lite0)."""
    prefix = "multilevel" if backbone == "lite0" else f"multilevel-{backbone}"
    digest = hashlib.sha256(f"{prefix}:{size}:{seed}:".encode())
    for p in paths:
        digest.update(os.path.abspath(p).encode() + b"\0")
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


def extract(paths: list[str], size: int, views: int, seed: int, cache_root: Path, log=print,
            backbone: str = "lite0") -> np.ndarray:
    """Features (views, N, D) for every path, computed once and cached under cache_root."""
    from training.model import make_feature_extractor
    cache = cache_root / cache_key(paths, size, seed, backbone)
    cache.mkdir(parents=True, exist_ok=True)
    extractor = make_feature_extractor(size, backbone)
    with ThreadPoolExecutor(2) as pool:
        return np.stack([extract_view(extractor, paths, size, v, seed, cache, pool, log)
                         for v in range(views)])


def extract_roots(frame, size: int, views: int, seed: int, cache_root: Path, backbone: str = "lite0",
                  log=print) -> np.ndarray:
    """Features (views, N, D) of a scanned frame, one cache per data root (as training reads them)."""
    return np.concatenate([extract(group["path"].tolist(), size, views, seed, cache_root, log, backbone)
                           for _, group in frame.groupby("root", sort=False)], axis=1)


def main(argv=None) -> None:
    """Fill the feature cache ahead of training (resumable; each chunk of 1024 images is saved)."""
    import argparse
    from training import data
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--data", action="append", required=True, help="folder with medical/ and non-medical/")
    p.add_argument("--work", type=Path, default=Path("runs"), help="cache folder (features/ under it)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--views", type=int, default=1, help="1 clean + N-1 augmented views per image")
    p.add_argument("--backbone", default="lite0", help="lite0 or lite2")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--max-per-source", type=int, default=0, help="sample this many per source (0: all)")
    args = p.parse_args(argv)
    frame = data.sample(data.scan(args.data), args.max_per_source, args.seed)
    print(f"{len(frame)} images: {args.backbone} at {args.size} px, {args.views} view(s)", flush=True)
    extract_roots(frame, args.size, args.views, args.seed, args.work / "features", args.backbone,
                  log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
