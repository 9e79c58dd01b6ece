"""Heads on cached backbone features: fitting, stacking views, and predictions on held-out sources."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd


def fit_head(x, y, w, epochs: int, seed: int, classes: int = 1, hidden: int = 0,
             checkpoint: Path | None = None, standardise: bool = True):
    """Train a head (standardised features -> logits) with early stopping; returns the head.

    ``classes`` 1: one logit, binary cross-entropy on y in {0, 1}; K > 1: softmax over y in 0..K-1.
    """
    import keras
    from training.model import make_head
    keras.utils.set_random_seed(seed)
    val = np.random.default_rng(seed).random(len(y)) < 0.1
    head = make_head(features=x.shape[1], outputs=classes, hidden=hidden,
                     **({"mean": x[~val].mean(axis=0), "variance": x[~val].var(axis=0)} if standardise else {}))
    loss = (keras.losses.BinaryCrossentropy(from_logits=True) if classes == 1
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    callbacks = [keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True),
                 keras.callbacks.ReduceLROnPlateau(factor=0.3, patience=2)]
    if checkpoint is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(str(checkpoint)))
    head.fit(x[~val], y[~val], sample_weight=w[~val], validation_data=(x[val], y[val], w[val]),
             epochs=epochs, batch_size=1024, callbacks=callbacks, verbose=0)
    return head


def stack_views(feats: np.ndarray, idx: np.ndarray, y: np.ndarray, weights: np.ndarray):
    """All views of the given images as one training set (unreadable rows dropped)."""
    x = feats[:, idx].reshape(-1, feats.shape[-1])
    yy = np.tile(y[idx], feats.shape[0])
    w = np.tile(weights[idx], feats.shape[0]).astype("float32")
    ok = ~np.isnan(x).any(axis=1)
    return x[ok], yy[ok], w[ok]


def source_folds(frame: pd.DataFrame, folds: int) -> dict[str, list[str]]:
    """Fold name -> held-out sources: one source per fold (folds=0), or ``folds`` groups of sources
    dealt round-robin by size, so that every source is held out exactly once."""
    sources = frame["source"].value_counts().index.tolist()
    if not folds:
        return {s: [s] for s in sorted(sources)}
    return {f"fold{k:02d}": sorted(sources[k::folds]) for k in range(folds)}


def held_out(feats, frame: pd.DataFrame, y: np.ndarray, weights: np.ndarray, train_mask: np.ndarray,
             folds_dir: Path, folds: int = 0, classes: int = 1, epochs: int = 30, seed: int = 1234,
             hidden: int = 0, standardise: bool = True, log=print) -> np.ndarray:
    """Clean-view logits of every image from a head that never saw its source (resumable per fold).

    ``train_mask`` selects the images a head may train on (e.g. medical images for the modality head);
    folds holding none of them are skipped (their rows stay NaN).
    """
    out = np.full((len(frame), classes), np.nan, np.float32)
    folds_dir.mkdir(parents=True, exist_ok=True)
    for name, sources in source_folds(frame, folds).items():
        test = frame["source"].isin(sources).to_numpy()
        if not (test & train_mask).any():
            continue
        saved = folds_dir / f"{name}.npy"
        if not saved.exists():
            t0 = time.time()
            x, yy, w = stack_views(feats, np.flatnonzero(~test & train_mask), y, weights)
            head = fit_head(x, yy, w, epochs, seed, classes, hidden, standardise=standardise)
            np.save(saved, head.predict(np.nan_to_num(feats[0, test]), batch_size=1024, verbose=0))
            log(f"  fold {name}: {test.sum()} held out, {time.time() - t0:.0f}s")
        out[test] = np.load(saved)
    return out
