"""Evaluate a saved model on labelled folders, through the same API the product uses.

    python -m training.evaluate --model models/NAME --data DIR [--data DIR ...] [--out DIR]

Prints the classification report, confusion matrix, ROC AUC, calibration error (ECE) and accuracy
per source; writes confusion-matrix, ROC and reliability PNGs, predictions CSV and a metrics JSON.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from medcrawl.model.classifier import Classifier
from medcrawl.model.images import ImageError
from training import data, metrics


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="model directory (model.json)")
    p.add_argument("--data", action="append", required=True, help="folder with medical/ and non-medical/")
    p.add_argument("--out", type=Path, help="report folder (default: MODEL/evaluation)")
    p.add_argument("--prefix", default=None, help="file name prefix (default: the data folder name)")
    p.add_argument("--engine", choices=("litert", "keras"), default=None)
    p.add_argument("--batch-size", type=int, default=64)
    return p.parse_args(argv)


def predict_paths(clf: Classifier, paths: list[str], batch_size: int) -> np.ndarray:
    """Medical probability per path (NaN where the file cannot be decoded)."""
    def load(path):
        try:
            return clf.prepare(Path(path).read_bytes())[1]
        except (OSError, ImageError):
            return None
    probs = np.full(len(paths), np.nan, np.float32)
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(paths), batch_size):
            arrays = list(pool.map(load, paths[start:start + batch_size]))
            ok = [i for i, a in enumerate(arrays) if a is not None]
            if ok:
                probs[[start + i for i in ok]] = clf.predict(np.stack([arrays[i] for i in ok]))
    return probs


def main(argv=None) -> dict:
    args = parse_args(argv)
    clf = Classifier.load(args.model, engine=args.engine)
    frame = data.scan(args.data)
    frame["prob"] = predict_paths(clf, frame["path"].tolist(), args.batch_size)
    unreadable = frame["prob"].isna()
    if unreadable.any():
        print(f"{int(unreadable.sum())} unreadable images skipped, e.g. {frame.loc[unreadable, 'path'].iloc[0]}")
    frame = frame[~unreadable].reset_index(drop=True)
    summary = metrics.summarize(frame, clf.threshold)
    summary["model"] = clf.name
    prefix = args.prefix if args.prefix is not None else "_".join(Path(d).name for d in args.data) + "_"
    metrics.print_summary(f"{clf.name} on {', '.join(args.data)}", summary)
    out = args.out or args.model / "evaluation"
    metrics.write_report(frame, summary, out, prefix)
    print(f"wrote {out}/{prefix}metrics.json and plots")
    return summary


if __name__ == "__main__":
    main()
