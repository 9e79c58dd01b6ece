"""Evaluate a saved model on labelled folders, through the same API the product uses.

    python -m training.evaluate --model models/NAME --data DIR [--data DIR ...] [--out DIR]

Prints the classification report, confusion matrix, ROC AUC, calibration error (ECE) and accuracy
per source; writes confusion-matrix, ROC and reliability PNGs, predictions CSV and a metrics JSON;
for a model with a modality head, also the modality report where the folders' MANIFEST.csv names them.
"""

from __future__ import annotations

import argparse
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from medcrawl.model.classifier import Classifier
from medcrawl.model.images import ImageError
from training import data, metrics, modality


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="model directory (model.json)")
    p.add_argument("--data", action="append", required=True, help="folder with medical/ and non-medical/")
    p.add_argument("--out", type=Path, help="report folder (default: MODEL/evaluation)")
    p.add_argument("--prefix", default=None, help="file name prefix (default: the data folder name)")
    p.add_argument("--manifest", action="append", default=[],
                   help="extra MANIFEST.csv naming modalities (as training.train)")
    p.add_argument("--engine", choices=("litert", "keras"), default=None)
    p.add_argument("--batch-size", type=int, default=64)
    return p.parse_args(argv)


def predict_paths(clf: Classifier, paths: list[str], batch_size: int):
    """Medical probability per path (NaN where the file cannot be decoded) and, for a model with a
    modality head, the modality scores (N, K); else None."""
    def load(path, model=clf):
        try:
            return model.prepare(Path(path).read_bytes())[1]
        except (OSError, ImageError):
            return None

    def refine_inputs(batch_paths):
        return lambda rows: np.stack([load(batch_paths[i], clf.refiner) for i in rows])
    probs = np.full(len(paths), np.nan, np.float32)
    scores = np.full((len(paths), len(clf.modalities)), np.nan, np.float32) if clf.modalities else None
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(paths), batch_size):
            arrays = list(pool.map(load, paths[start:start + batch_size]))
            ok = [i for i, a in enumerate(arrays) if a is not None]
            if ok:
                out = clf.predict_all(np.stack([arrays[i] for i in ok]),
                                      refine_inputs=refine_inputs([paths[start + i] for i in ok]))
                probs[[start + i for i in ok]] = out.medical_probability
                if scores is not None:
                    scores[[start + i for i in ok]] = out.modality
    return probs, scores


def with_origins(frame, roots: list[str]):
    """Add the ``origin`` of each image where its folder's MANIFEST.csv names it (origin_path; a
    Python package's file from its package folder on, so no machine's paths are written)."""
    import pandas as pd
    origins = {}
    for root in map(Path, roots):
        manifest = root / "MANIFEST.csv"
        if manifest.is_file():
            table = pd.read_csv(manifest, dtype=str)
            if "origin_path" in table:
                origins.update({str(root / p): re.sub(r"^.*/(site-packages|dist-packages)/", "", str(o))
                                for p, o in zip(table["path"], table["origin_path"])})
    return frame.assign(origin=[origins.get(p, "") for p in frame["path"]]) if origins else frame


def modality_report(clf, frame, scores, args, out: Path, prefix: str) -> dict | None:
    """Modality accuracy on the medical images whose folder's manifest names their modality."""
    frame = modality.attach(frame, args.data, args.manifest)
    if scores is None or not (frame["modality_id"] >= 0).any():
        return None
    if list(clf.modalities) != list(modality.MODALITIES):
        raise SystemExit(f"{clf.name} names modalities {clf.modalities}, training knows {modality.MODALITIES}")
    summary = modality.summarize(frame, scores, clf.modality_min_confidence)
    print(modality.markdown(summary))
    modality.write_report(frame, scores, summary, out, prefix)
    return summary


def main(argv=None) -> dict:
    args = parse_args(argv)
    clf = Classifier.load(args.model, engine=args.engine)
    frame = with_origins(data.scan(args.data), args.data)
    frame["prob"], scores = predict_paths(clf, frame["path"].tolist(), args.batch_size)
    unreadable = frame["prob"].isna().to_numpy()
    if unreadable.any():
        print(f"{int(unreadable.sum())} unreadable images skipped, e.g. {frame.loc[unreadable, 'path'].iloc[0]}")
    frame, scores = frame[~unreadable].reset_index(drop=True), None if scores is None else scores[~unreadable]
    summary = metrics.summarize(frame, clf.threshold)
    summary["model"] = clf.name
    prefix = args.prefix if args.prefix is not None else "_".join(Path(d).name for d in args.data) + "_"
    metrics.print_summary(f"{clf.name} on {', '.join(args.data)}", summary)
    out = args.out or args.model / "evaluation"
    metrics.write_report(frame, summary, out, prefix)
    summary["modality"] = modality_report(clf, frame, scores, args, out, prefix)
    print(f"wrote {out}/{prefix}metrics.json and plots")
    return summary


if __name__ == "__main__":
    main()
