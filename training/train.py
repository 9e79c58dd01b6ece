"""Train the medical / non-medical classifier and measure it on held-out sources.

    python -m training.train --data DIR [--data DIR ...] --out models/NAME

1. Scan ``DIR/medical/<source>/**`` and ``DIR/non-medical/<source>/**``.
2. Compute frozen EfficientNet-Lite0 features for a clean view and augmented views of each image
   (cached in --work, so an interrupted run resumes where it stopped).
3. Leave-one-source-out: for every source, train the head without it and predict it.
4. From those held-out predictions: Platt calibration (scale, bias of the logit) and decision threshold.
5. Train the head on everything, build the uint8-in / probability-out model, save Keras + LiteRT.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from training import data, metrics
from training.export import save_model_dir
from training.features import cache_key, extract


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", required=True, help="folder with medical/ and non-medical/")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--work", type=Path, default=Path("runs"), help="cache and checkpoints")
    p.add_argument("--size", type=int, default=128, help="model input size (pixels)")
    p.add_argument("--views", type=int, default=3, help="1 clean + N-1 augmented views per image")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--name", default=None, help="model name (default: the --out folder name)")
    p.add_argument("--version", default="1")
    p.add_argument("--no-cv", action="store_true", help="skip the held-out-source folds")
    return p.parse_args(argv)


def fit_head(x, y, w, epochs: int, seed: int, checkpoint: Path | None = None):
    """Train the head on features with early stopping and LR reduction; returns the head."""
    import keras
    from training.model import make_head
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    val = rng.random(len(y)) < 0.1
    head = make_head()
    head.compile(optimizer=keras.optimizers.Adam(1e-3),
                 loss=keras.losses.BinaryCrossentropy(from_logits=True))
    callbacks = [keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True),
                 keras.callbacks.ReduceLROnPlateau(factor=0.3, patience=2)]
    if checkpoint is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(str(checkpoint)))
    head.fit(x[~val], y[~val], sample_weight=w[~val], validation_data=(x[val], y[val], w[val]),
             epochs=epochs, batch_size=1024, callbacks=callbacks, verbose=0)
    return head


def stack_views(feats: np.ndarray, idx: np.ndarray, frame: pd.DataFrame, weights: np.ndarray):
    """All views of the given images as one training set (unreadable rows dropped)."""
    x = feats[:, idx].reshape(-1, feats.shape[-1])
    y = np.tile(frame["label"].to_numpy()[idx], feats.shape[0]).astype("float32")
    w = np.tile(weights[idx], feats.shape[0]).astype("float32")
    ok = ~np.isnan(x).any(axis=1)
    return x[ok], y[ok], w[ok]


def held_out_logits(feats, frame, weights, args, folds_dir: Path) -> np.ndarray:
    """Leave-one-source-out logits of the clean view; each fold saved so a rerun resumes."""
    logits = np.full(len(frame), np.nan, np.float32)
    folds_dir.mkdir(parents=True, exist_ok=True)
    for source in sorted(frame["source"].unique()):
        test = (frame["source"] == source).to_numpy()
        saved = folds_dir / f"{source}.npy"
        if not saved.exists():
            t0 = time.time()
            x, y, w = stack_views(feats, np.flatnonzero(~test), frame, weights)
            head = fit_head(x, y, w, args.epochs, args.seed)
            np.save(saved, head.predict(np.nan_to_num(feats[0, test]), batch_size=1024, verbose=0)[:, 0])
            print(f"  fold {source}: {test.sum()} held out, {time.time() - t0:.0f}s", flush=True)
        logits[test] = np.load(saved)
    return logits


def cross_fitted_probs(frame: pd.DataFrame, logits: np.ndarray) -> np.ndarray:
    """Calibrate each source with Platt scaling fitted on the other sources only."""
    probs = np.empty_like(logits)
    y = frame["label"].to_numpy()
    for source in frame["source"].unique():
        test = (frame["source"] == source).to_numpy()
        probs[test] = metrics.platt(logits[test], *metrics.fit_platt(y[~test], logits[~test]))
    return probs


def main(argv=None) -> None:
    args = parse_args(argv)
    name = args.name or args.out.name
    frame = data.scan(args.data)
    print(f"{len(frame)} images, {frame['source'].nunique()} sources:")
    print(frame.groupby(["label_name", "source"]).size().to_string())
    weights = data.balanced_weights(frame).to_numpy()
    feats = np.concatenate([extract(group["path"].tolist(), args.size, args.views, args.seed,
                                    args.work / "features") for _, group in frame.groupby("root", sort=False)], axis=1)
    readable = ~np.isnan(feats[0]).any(axis=1)
    print(f"{(~readable).sum()} unreadable images dropped")
    frame, feats, weights = frame[readable].reset_index(drop=True), feats[:, readable], weights[readable]

    meta = {"name": name, "version": args.version, "engine": "litert",
            "labels": list(data.LABELS), "backbone": "EfficientNet-Lite0 (ImageNet), frozen",
            "training": {"data": args.data, "views": args.views, "seed": args.seed,
                         "images": int(len(frame)),
                         "sources": frame.groupby(["label_name", "source"]).size()
                         .reset_index(name="images").to_dict("records")}}
    eval_dir = args.out / "evaluation"
    if not args.no_cv:
        run_key = cache_key(frame["path"].tolist(), args.size, f"{args.seed}:{args.views}:{args.epochs}")
        logits = held_out_logits(feats, frame, weights, args, args.work / "folds" / f"{name}-{run_key}")
        y = frame["label"].to_numpy()
        scale, bias = metrics.fit_platt(y, logits)
        # Decisions use the product's calibration; calibration is judged on a per-source cross-fit.
        held = frame.assign(logit=logits, prob=metrics.platt(logits, scale, bias),
                            prob_crossfit=cross_fitted_probs(frame, logits))
        threshold = metrics.choose_threshold(y, held["prob"].to_numpy())
        summary = metrics.summarize(held, threshold, calibration="prob_crossfit")
        metrics.print_summary("held-out sources (leave-one-source-out)", summary)
        metrics.write_report(held, summary, eval_dir, "heldout_", calibration="prob_crossfit")
        meta["heldout"] = {k: summary[k] for k in ("accuracy", "balanced_accuracy", "ece", "roc_auc",
                                                   "mean_source_accuracy", "min_source_accuracy")}
    else:
        scale, bias, threshold = 1.0, 0.0, 0.5
    meta.update(threshold=threshold, calibration={"method": "platt", "scale": scale, "bias": bias})

    x, y, w = stack_views(feats, np.arange(len(frame)), frame, weights)
    args.work.mkdir(parents=True, exist_ok=True)
    head = fit_head(x, y, w, args.epochs, args.seed, checkpoint=args.work / f"backup-{name}")
    from training.model import make_model
    from training.features import load_view
    model = make_model(args.size, head, scale, bias)
    probe = np.stack([load_view(p, args.size, 0, args.seed) for p in frame["path"].iloc[::max(1, len(frame) // 64)]])
    meta = save_model_dir(model, args.out, meta, probe.astype(np.uint8))
    print(f"saved {args.out} (threshold {threshold:.2f}, calibration {scale:.3f} * logit + {bias:.3f}, "
          f"LiteRT max diff {meta['litert_max_abs_diff']:.2e})")


if __name__ == "__main__":
    main()
