"""Backbone features keyed by the image's sha256, so a growing data folder is never computed twice
(sources added later, the same image under another path, a killed run resumed): the clean view
(what the product sees) and augmented views (``training.features.load_view``).

    python -m training.featurecache --data DATA --work runs --backbone lite0 --size 128 [--view 1]

Each chunk of images is saved as ``<work>/featurecache/<backbone>-<size>[-view<N>]/chunk-NNNNN.npz``
holding ``sha256`` and ``features``; unreadable images are recorded with NaN features.
"""

from __future__ import annotations

import argparse
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from training.features import load_view

CHUNK = 1024


def file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


SEED = 1234      # augmented views are drawn with this seed (training.features.load_view)


def cache_dir(work: Path, backbone: str, size: int, view: int = 0) -> Path:
    return work / "featurecache" / (f"{backbone}-{size}" + (f"-view{view}" if view else ""))


def load(work: Path, backbone: str, size: int, view: int = 0) -> dict[str, np.ndarray]:
    """Every cached feature row of one view, by sha256."""
    table: dict[str, np.ndarray] = {}
    for chunk in sorted(cache_dir(work, backbone, size, view).glob("chunk-*.npz")):
        with np.load(chunk) as data:
            table.update(zip(data["sha256"].tolist(), data["features"]))
    return table


def product_view(path: str, size: int) -> np.ndarray | None:
    """Exactly what the product feeds the model (the clean view); None when it refuses the image."""
    return load_view(path, size, view=0, seed=0)


def fill(paths: list[str], work: Path, backbone: str, size: int, log=print,
         view: int = 0) -> dict[str, np.ndarray]:
    """Compute the features of the images not cached yet; return the table for ``paths``.
    ``view`` 0 is the clean view, others augmented copies (``training.augment``)."""
    from training.model import make_feature_extractor
    folder = cache_dir(work, backbone, size, view)
    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(2) as pool:
        shas = list(pool.map(file_sha256, paths))
    known = load(work, backbone, size, view)
    todo = sorted({s: p for s, p in zip(shas, paths) if s not in known}.items())
    log(f"{len(paths)} images, {len(todo)} to compute ({backbone} at {size} px, view {view})")
    extractor = make_feature_extractor(size, backbone) if todo else None
    start = len(list(folder.glob("chunk-*.npz")))
    with ThreadPoolExecutor(2) as pool:
        for n, i in enumerate(range(0, len(todo), CHUNK)):
            part = todo[i:i + CHUNK]
            views = list(pool.map(lambda item: load_view(item[1], size, view, SEED), part))
            ok = [j for j, v in enumerate(views) if v is not None]
            feats = np.full((len(part), extractor.output_shape[-1]), np.nan, np.float32)
            if ok:
                feats[ok] = extractor.predict(np.stack([views[j] for j in ok]), batch_size=64, verbose=0)
            tmp = folder / f"chunk-{start + n:05d}.tmp.npz"
            np.savez(tmp, sha256=np.array([s for s, _ in part]), features=feats)
            tmp.rename(folder / f"chunk-{start + n:05d}.npz")
            log(f"  {min(i + CHUNK, len(todo))}/{len(todo)}")
    table = load(work, backbone, size, view)
    return {s: table[s] for s in shas}


def main(argv=None) -> None:
    from training import data
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", required=True, help="folder with medical/ and non-medical/")
    p.add_argument("--work", type=Path, default=Path("runs"))
    p.add_argument("--backbone", default="lite0")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--view", type=int, default=0, help="0: the clean view; N: the N-th augmented view")
    args = p.parse_args(argv)
    frame = data.scan(args.data)
    fill(frame["path"].tolist(), args.work, args.backbone, args.size, log=lambda m: print(m, flush=True),
         view=args.view)


if __name__ == "__main__":
    main()
