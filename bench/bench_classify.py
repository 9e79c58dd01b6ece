"""Classification end to end (read, decode, resize, infer, write row) against its baselines.

Arms, alternated every round on the same generated JPEG/PNG files:
  product-bN  medcrawl.model.labelling.label_items on batches of N, rows written with csv
  refine-all  product-b64 with the cascade's band widened to every image (each also decoded for
              and labelled by the refine model): with the share of images the cascade refines on
              held-out sources (model.json), it gives the expected rate on images like those
  floor       medcrawl.model.images.prepare alone, one thread (decode + resize, no model)
  naive       one keras ``model.predict`` per image, plain Pillow decode (what older tools did)
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench import common
from bench.common import Figure

BATCHES = (1, 16, 64)
# medcrawl-v3 (Lite0, 128 px, issue 20): end to end >= 0.9x one thread's decode+resize (v2, Lite2 at
# 224 px, was held to 0.45x); >= 15x one Keras predict per image.
TARGET_FLOOR, TARGET_NAIVE = 0.9, 15.0


def product(classifier, paths: list[Path], batch: int, min_size: int = 64) -> int:
    """Label every file through label_items, write the rows; returns the number of ok rows."""
    from medcrawl.items import ROW_FIELDS, ImageItem
    from medcrawl.model.labelling import label_items
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=ROW_FIELDS)
    ok = 0
    for start in range(0, len(paths), batch):
        items = [ImageItem(image_url=p.as_uri(), source_type="file", path=p.name,
                           body=p.read_bytes()) for p in paths[start:start + batch]]
        for item in label_items(classifier, items, min_size=min_size):
            writer.writerow(item.row())
            ok += item.status == "ok"
    return ok


def floor(paths: list[Path], size: int, threads: int = 1) -> int:
    """Decode + resize only, through the product's own decode path."""
    from medcrawl.model.images import prepare

    def one(path: Path) -> int:
        return prepare(path.read_bytes(), size, min_size=64)[1].shape[0]
    if threads == 1:
        return len([one(p) for p in paths])
    with ThreadPoolExecutor(threads) as pool:
        return len(list(pool.map(one, paths)))


class Naive:
    """The old way: plain Pillow decode and one Keras ``predict`` call per image."""

    def __init__(self, classifier):
        import keras
        path = classifier.model_dir / classifier.meta["files"]["keras"]
        self.model = keras.saving.load_model(path, compile=False)
        self.size, self.threshold = classifier.input_size, classifier.threshold

    def __call__(self, paths: list[Path]) -> int:
        from PIL import Image
        writer = csv.writer(io.StringIO())
        for path in paths:
            img = Image.open(path).convert("RGB").resize((self.size, self.size))
            out = self.model.predict(np.asarray(img)[None], verbose=0)
            p = float((out["medical_probability"] if isinstance(out, dict) else out)[0, 0])
            writer.writerow([path.name, p, "medical" if p >= self.threshold else "non-medical"])
        return len(paths)


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--images", type=int, help="generated images (default 480; quick 24)")
    p.add_argument("--naive-images", type=int, help="images for the slow naive arm (default 96)")
    p.add_argument("--engine", choices=("litert", "keras"), help="default: the model's own")
    args = p.parse_args(argv)
    n = args.images or (24 if args.quick else 480)
    naive_n = min(n, args.naive_images or (6 if args.quick else 96))
    size = (320, 256) if args.quick else (1000, 800)
    paths = common.write_images(n, size)
    from medcrawl.config import model_location
    from medcrawl.model.classifier import Classifier
    clf = Classifier.load(*model_location(args.model, args.engine))
    naive = Naive(clf)
    arms = {f"product-b{b}": (lambda b=b: product(clf, paths, b), n) for b in BATCHES}
    if clf.refiner is not None:
        every = refine_everything(clf, Path(tempfile.mkdtemp(prefix="medcrawl-refine-all-")))
        arms["refine-all"] = (lambda: product(every, paths, 64), n)
    arms |= {"floor": (lambda: floor(paths, clf.input_size), n),
             "floor-2threads": (lambda: floor(paths, clf.input_size, threads=2), n),
             "naive": (lambda: naive(paths[:naive_n]), naive_n)}
    for fn, _ in arms.values():                      # warm-up: model graphs, page cache
        fn()
    rates = run_rounds(arms, common.rounds(args, full=5, quick=1))
    return common.report("classification end to end (images/s)", figures(rates, clf), args,
                         {"images": n, "image_size": list(size), "png_share": 0.25,
                          "engine": clf.engine, "model": clf.name})


def refine_everything(clf, folder: Path):
    """The same model files with the cascade's band over every probability."""
    import json
    from medcrawl.model.classifier import Classifier
    folder.mkdir(parents=True, exist_ok=True)
    for entry in clf.model_dir.iterdir():
        link = folder / entry.name
        if entry.name != "model.json" and not link.exists():
            link.symlink_to(entry.resolve())
    meta = dict(clf.meta, refine=dict(clf.meta["refine"], band=[1e-9, 1 - 1e-9]))
    (folder / "model.json").write_text(json.dumps(meta))
    return Classifier.load(folder, clf.engine)


def run_rounds(arms: dict, rounds: int) -> dict[str, list[float]]:
    """Images/s of every arm per round; the order rotates each round to spread drift."""
    names, rates = list(arms), {name: [] for name in arms}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, count = arms[name]
            seconds, done = common.timed(fn)
            if done < count:
                raise SystemExit(f"{name}: only {done} of {count} images were labelled ok")
            rates[name].append(count / seconds)
    return rates


def figures(rates: dict[str, list[float]], clf) -> list[Figure]:
    med = {name: common.median(values) for name, values in rates.items()}
    best = max((f"product-b{b}" for b in BATCHES), key=lambda name: med[name])
    out = [Figure(f"{name} rate", med[name], "images/s",
                  note=f"{clf.engine}" if name.startswith("product") else "") for name in rates]
    out += [Figure(f"{best} / floor", common.rate_ratio(rates, best, "floor"), "x", TARGET_FLOOR),
            Figure(f"{best} / naive", common.rate_ratio(rates, best, "naive"), "x", TARGET_NAIVE),
            Figure(f"{best} / floor-2threads", common.rate_ratio(rates, best, "floor-2threads"), "x")]
    if best != "product-b1":
        out.insert(-1, Figure("product-b1 / naive", common.rate_ratio(rates, "product-b1", "naive"), "x"))
    if "refine-all" in rates:
        share = float(clf.meta.get("cascade", {}).get("refined", 0.0))
        expected = [1 / ((1 - share) / a + share / b) / f
                    for a, b, f in zip(rates["product-b64"], rates["refine-all"], rates["floor"])]
        out += [Figure("refine-all / product-b64", common.rate_ratio(rates, "refine-all", "product-b64"), "x"),
                Figure(f"product-b64 / floor at the held-out refine share ({share:.1%})",
                       common.median(expected), "x", TARGET_FLOOR, note="expected")]
    return out


if __name__ == "__main__":
    sys.exit(main())
