"""Train the medical / non-medical classifier and its modality head, measured on held-out sources.

    python -m training.train --data DIR [--data DIR ...] [--manifest CSV] --out models/NAME

1. Scan ``DIR/medical/<source>/**`` and ``DIR/non-medical/<source>/**``; medical images get their
   modality from ``DIR/MANIFEST.csv`` (or --manifest) when it names one of training.modality.MODALITIES.
2. Compute frozen EfficientNet-Lite features for a clean view and augmented views of each image
   (cached in --work, so an interrupted run resumes where it stopped).
3. Held-out sources (one per fold, or --folds groups): for every fold, train the heads without its
   sources and predict them.
4. From those held-out predictions: Platt calibration, decision threshold, the dataset folder's
   purity/recall curve, and the modality head's minimum confidence.
5. Train both heads on everything, build the uint8-in model with its two outputs, save Keras + LiteRT.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from training import data, metrics, modality
from training.features import cache_key, extract_roots
from training.export import save_model_dir
from training.heads import fit_head, held_out, stack_views


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", required=True, help="folder with medical/ and non-medical/")
    p.add_argument("--manifest", action="append", default=[],
                   help="extra MANIFEST.csv (path relative to a --data folder, modality column)")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--work", type=Path, default=Path("runs"), help="cache and checkpoints")
    p.add_argument("--size", type=int, default=224, help="model input size (pixels)")
    p.add_argument("--backbone", default="lite0", help="lite0, lite2 or lite0+lite2 (features concatenated)")
    p.add_argument("--views", type=int, default=1, help="1 clean + N-1 augmented views per image")
    p.add_argument("--hidden", type=int, default=0, help="hidden units of the binary head (0: linear)")
    p.add_argument("--modality-hidden", type=int, default=None, help="hidden units of the modality head "
                   "(default: as --hidden)")
    p.add_argument("--raw-features", action="store_true", help="heads without standardisation")
    p.add_argument("--folds", type=int, default=0, help="0: leave one source out; N: N groups of sources")
    p.add_argument("--modality-folds", type=int, default=0, help="as --folds, for the modality head")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--max-per-source", type=int, default=0, help="sample this many per source (0: all)")
    p.add_argument("--folder-purity", type=float, default=0.99, help="purity the dataset default aims at")
    p.add_argument("--name", default=None, help="model name (default: the --out folder name)")
    p.add_argument("--version", default="1")
    p.add_argument("--no-cv", action="store_true", help="skip the held-out-source folds")
    p.add_argument("--no-export", action="store_true", help="held-out report only, no model files")
    return p.parse_args(argv)


def load_features(frame, args) -> np.ndarray:
    """Features (views, N, D) of every image, the backbones' features side by side."""
    return np.concatenate([extract_roots(frame, args.size, args.views, args.seed, args.work / "features", b)
                           for b in args.backbone.split("+")], axis=2)


def run_dir(frame, args, name: str) -> Path:
    """Where this configuration's folds are saved (resume)."""
    labels = hashlib.sha256(frame[["label", "modality_id"]].to_numpy().tobytes()).hexdigest()[:8]
    key = cache_key(frame["path"].tolist(), args.size,
                    f"{args.seed}:{args.views}:{args.epochs}:{args.backbone}:{args.hidden}:{args.folds}:{args.raw_features}:{labels}")
    return args.work / "folds" / f"{name}-{key}"


def binary_report(feats, frame, weights, args, folds: Path, eval_dir: Path) -> dict:
    """Held-out binary metrics, calibration, threshold and the dataset folder's default."""
    y = frame["label"].to_numpy()
    logits = held_out(feats, frame, y.astype("float32"), weights, np.ones(len(frame), bool), folds,
                      args.folds, 1, args.epochs, args.seed, args.hidden, not args.raw_features)[:, 0]
    scale, bias = metrics.fit_platt(y, logits)
    # Decisions use the product's calibration; calibration is judged on a per-source cross-fit.
    held = frame.assign(logit=logits, prob=metrics.platt(logits, scale, bias),
                        prob_crossfit=cross_fitted_probs(frame, logits))
    threshold = metrics.choose_threshold(y, held["prob"].to_numpy())
    summary = metrics.summarize(held, threshold, calibration="prob_crossfit")
    metrics.print_summary("held-out sources", summary)
    metrics.write_report(held, summary, eval_dir, "heldout_", calibration="prob_crossfit")
    curve = metrics.folder_curve(y, held["prob"].to_numpy(), threshold)
    chosen = metrics.choose_min_confidence(curve, args.folder_purity)
    curve.to_csv(eval_dir / "heldout_folder_curve.csv", index=False)
    metrics.plot_folder_curve(curve, chosen, eval_dir / "heldout_folder_curve.png")
    at = curve[curve["min_confidence"] == chosen].iloc[0]
    print(f"dataset folder at min confidence {chosen:.2f}: purity {at['purity']:.4f} "
          f"(classes equal {at['balanced_purity']:.4f}), recall {at['recall']:.4f}")
    return {"threshold": threshold, "calibration": {"method": "platt", "scale": scale, "bias": bias},
            "heldout": {k: summary[k] for k in ("accuracy", "balanced_accuracy", "ece", "roc_auc",
                                                "mean_source_accuracy", "min_source_accuracy")},
            "dataset_min_confidence": chosen,
            "dataset_folder": {k: float(at[k]) for k in ("purity", "balanced_purity", "recall")}}


def cross_fitted_probs(frame, logits: np.ndarray) -> np.ndarray:
    """Calibrate each source with Platt scaling fitted on the other sources only."""
    probs = np.empty_like(logits)
    y = frame["label"].to_numpy()
    for source in frame["source"].unique():
        test = (frame["source"] == source).to_numpy()
        probs[test] = metrics.platt(logits[test], *metrics.fit_platt(y[~test], logits[~test]))
    return probs


def modality_report(feats, frame, weights, args, folds: Path, eval_dir: Path) -> dict:
    """Held-out modality metrics (by default one medical source out at a time, so a modality with two
    sources is scored on each while trained on the other) and the min confidence below which a row
    says ``other``."""
    labelled = (frame["modality_id"] >= 0).to_numpy()
    logits = held_out(feats, frame, frame["modality_id"].to_numpy(), weights, labelled, folds,
                      args.modality_folds, len(modality.MODALITIES), args.epochs, args.seed,
                      args.modality_hidden, not args.raw_features)
    probs = modality.softmax(np.nan_to_num(logits))
    min_conf = modality.choose_min_confidence(frame["modality"].to_numpy()[labelled], probs[labelled])
    summary = modality.summarize(frame, probs, min_conf)
    print(modality.markdown(summary))
    modality.write_report(frame, probs, summary, eval_dir, "heldout_")
    return {"modality_min_confidence": min_conf,
            "modality_heldout": {k: summary[k] for k in ("accuracy", "accuracy_multi_source", "top1_accuracy",
                                                         "other_share")}}


def fit_final(feats, frame, weights, mod_weights, args, name: str):
    """Both heads trained on every image (all views); no modality head without modality labels."""
    all_rows = np.arange(len(frame))
    x, y, w = stack_views(feats, all_rows, frame["label"].to_numpy().astype("float32"), weights)
    head = fit_head(x, y, w, args.epochs, args.seed, hidden=args.hidden,
                    checkpoint=args.work / f"backup-{name}", standardise=not args.raw_features)
    labelled = np.flatnonzero(frame["modality_id"].to_numpy() >= 0)
    if not len(labelled):
        return head, None
    x, y, w = stack_views(feats, labelled, frame["modality_id"].to_numpy(), mod_weights)
    mod_head = fit_head(x, y, w, args.epochs, args.seed, len(modality.MODALITIES), args.modality_hidden,
                        checkpoint=args.work / f"backup-{name}-modality", standardise=not args.raw_features)
    return head, mod_head


def training_meta(frame, args, name: str) -> dict:
    """What the model was trained on: sources by name, counts, modalities, the command's data folders."""
    sources = (frame.groupby(["label_name", "source"])
               .agg(images=("path", "size"), modality=("modality", lambda m: ",".join(sorted(set(m) - {""}))))
               .reset_index())
    return {"name": name, "engine": "litert", "labels": list(data.LABELS),
            "backbone": f"EfficientNet-{args.backbone.replace('lite', 'Lite')} (ImageNet), frozen",
            **({"modalities": list(modality.MODALITIES)} if (frame["modality_id"] >= 0).any() else {}),
            "training": {"data": [os.path.relpath(d) for d in args.data],
                         "manifest": [os.path.relpath(m) for m in args.manifest],
                         "backbone": args.backbone, "views": args.views, "hidden": args.hidden,
                         "modality_hidden": args.modality_hidden,
                         "folds": args.folds or "leave-one-source-out", "seed": args.seed,
                         "images": int(len(frame)), "sources": sources.to_dict("records")}}


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.modality_hidden = args.hidden if args.modality_hidden is None else args.modality_hidden
    name = args.name or args.out.name
    frame = data.sample(data.scan(args.data), args.max_per_source, args.seed)
    frame = modality.attach(frame, args.data, args.manifest)
    print(f"{len(frame)} images, {frame['source'].nunique()} sources, "
          f"{(frame['modality_id'] >= 0).sum()} with a modality:")
    print(frame.groupby(["label_name", "source", "modality"]).size().to_string())
    feats = load_features(frame, args)
    readable = ~np.isnan(feats[0]).any(axis=1)
    print(f"{(~readable).sum()} unreadable images dropped")
    frame, feats = frame[readable].reset_index(drop=True), feats[:, readable]
    weights, mod_weights = data.balanced_weights(frame).to_numpy(), modality.balanced_weights(frame)

    meta = {**training_meta(frame, args, name), "version": args.version}
    eval_dir = args.out / "evaluation"
    if not args.no_cv:
        folds = run_dir(frame, args, name)
        meta.update(binary_report(feats, frame, weights, args, folds, eval_dir))
        if "modalities" in meta:
            hidden = f"-h{args.modality_hidden}" if args.modality_hidden else ""
            mod_folds = folds / f"modality-{args.modality_folds}{hidden}"
            meta.update(modality_report(feats, frame, mod_weights, args, mod_folds, eval_dir))
    else:
        meta.update(threshold=0.5, calibration={"method": "platt", "scale": 1.0, "bias": 0.0})
        meta.update({"modality_min_confidence": 0.5} if "modalities" in meta else {})
    if args.no_export:
        (eval_dir / "heldout_summary.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return meta
    head, mod_head = fit_final(feats, frame, weights, mod_weights, args, name)
    from training.features import load_view
    from training.model import make_model
    cal = meta["calibration"]
    model = make_model(args.size, head, cal["scale"], cal["bias"], mod_head, args.backbone)
    probe = np.stack([load_view(p, args.size, 0, args.seed) for p in frame["path"].iloc[::max(1, len(frame) // 64)]])
    meta = save_model_dir(model, args.out, meta, probe.astype(np.uint8))
    print(f"saved {args.out} (threshold {meta['threshold']:.2f}, calibration {cal['scale']:.3f} * logit + "
          f"{cal['bias']:.3f}, LiteRT max diff {meta['litert_max_abs_diff']:.2e})")
    return meta


if __name__ == "__main__":
    main()
