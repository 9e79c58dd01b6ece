"""The cascade: a second, larger kind model labels the images the product model is unsure of.

    python -m training.kindhead --manifest DATA/MANIFEST.csv --out models/medcrawl-v3 --views 2
    python -m training.kindhead --manifest DATA/MANIFEST.csv --out models/medcrawl-v3/refine \\
        --backbone lite2 --size 224 --views 1
    python -m training.cascade --model models/medcrawl-v3 --band 0.2 0.8

Both training runs hold out the same groups of upstream datasets (``kindhead.upstream_folds`` on the
same manifest), so their held-out predictions combine image by image: inside the band the mean of
both models' probabilities, outside it the first model's (a refined image stays below the band's
top, so the dataset folder above it keeps the first model's purity). This command reports the combination on the
held-out images (``evaluation/heldout_cascade_*``, every band in ``BANDS`` on stdout), picks the
dataset folder's default from its curve and writes ``refine`` into the product model's model.json,
which ``Classifier.load`` reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from training import metrics

BANDS = ((0.3, 0.7), (0.2, 0.8), (0.1, 0.9), (0.05, 0.95))
PREDICTIONS = "evaluation/heldout_inkind_predictions.csv"


def held_out(model: Path, refine: Path) -> pd.DataFrame:
    """Both models' held-out probabilities per image (``prob``, ``refine_prob``)."""
    first, second = pd.read_csv(model / PREDICTIONS), pd.read_csv(refine / PREDICTIONS)
    if set(first["fold"].groupby(first["upstream"]).first().items()) != \
            set(second["fold"].groupby(second["upstream"]).first().items()):
        raise SystemExit("the two models were not held out on the same folds")
    return first.merge(second[["sha256", "prob"]].rename(columns={"prob": "refine_prob"}), on="sha256")


def combine(frame: pd.DataFrame, band: tuple[float, float]) -> pd.DataFrame:
    unsure = (frame["prob"] > band[0]) & (frame["prob"] < band[1])
    return frame.assign(first_prob=frame["prob"], refined=unsure,
                        prob=np.where(unsure, (frame["prob"] + frame["refine_prob"]) / 2, frame["prob"]))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="the product model's folder")
    p.add_argument("--refine", default="refine", help="the refine model's folder inside it")
    p.add_argument("--band", type=float, nargs=2, default=(0.2, 0.8), metavar=("LOW", "HIGH"))
    args = p.parse_args(argv)
    frame = held_out(args.model, args.model / args.refine)
    for band in BANDS:
        rows = combine(frame, band)
        summary = metrics.summarize(rows, 0.5)
        print(f"band {band[0]}-{band[1]}: {rows['refined'].mean():.3f} of images refined, "
              f"balanced accuracy {summary['balanced_accuracy']:.4f}")
    rows = combine(frame, tuple(args.band))
    summary = metrics.summarize(rows, 0.5)
    metrics.print_summary(f"cascade {args.band[0]}-{args.band[1]}, held-out upstreams, in-kind", summary)
    eval_dir = args.model / "evaluation"
    metrics.write_report(rows, summary, eval_dir, "heldout_cascade_")
    curve = metrics.folder_curve(rows["label"].to_numpy(), rows["prob"].to_numpy(), 0.5)
    chosen = metrics.choose_min_confidence(curve, 0.99)
    curve.to_csv(eval_dir / "heldout_cascade_folder_curve.csv", index=False)
    metrics.plot_folder_curve(curve, chosen, eval_dir / "heldout_cascade_folder_curve.png")
    at = curve[curve["min_confidence"] == chosen].iloc[0]
    meta_path = args.model / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["refine"] = {"model": args.refine, "band": list(args.band)}
    meta["dataset_min_confidence"] = chosen
    meta["cascade"] = {"refined": float(rows["refined"].mean()),
                       "inkind": {k: summary[k] for k in ("images", "accuracy", "balanced_accuracy", "ece",
                                                          "roc_auc", "mean_source_accuracy")},
                       "dataset_folder": {k: float(at[k]) for k in ("purity", "balanced_purity", "recall")}}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"medical/ folder at {chosen:.2f}: purity {at['purity']:.4f}, kept {at['recall']:.4f}; "
          f"wrote refine {meta['refine']} into {meta_path}")
    return meta


if __name__ == "__main__":
    main()
