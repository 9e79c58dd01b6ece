"""Which starting point generalises to unseen sources: packaged EfficientNet-Lite0 (ImageNet),
packaged nsfwjs MobileNetV2, or a small CNN trained from scratch?

Samples ``--per-source`` images from every source (seeded), then evaluates each held-out source
with a model that never saw it:

  a. EfficientNet-Lite0 frozen multi-level features (training.model.make_feature_extractor, 128 px)
     + logistic regression,
  b. nsfwjs MobileNetV2 frozen global-average-pooled features (training.convert_nsfwjs, [0, 1]
     input, at each ``--nsfwjs-size``) + the same logistic regression,
  c. a 4-block CNN trained from scratch at ``--scratch-size`` px.

a and b are evaluated leave-one-source-out (LOSO) and also with the grouped k-fold split used for
c (each source held out exactly once; LOSO for c costs a CNN training per source). The head is
StandardScaler + LogisticRegression(C) with sample weights giving each class half the weight,
shared equally by its sources; the threshold is 0.5.

    python -m training.compare_backbones --data /work/data --data /work/pkgdata \
        --per-source 60 --out models/backbone-comparison.md
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from medcrawl.model import images
from training.data import balanced_weights, scan


# ----------------------------------------------------------------------------- data

def sample(frame: pd.DataFrame, per_source: int, seed: int) -> pd.DataFrame:
    """Up to ``per_source`` rows from every (label, source), seeded."""
    parts = [g.sample(n=min(per_source, len(g)), random_state=seed)
             for _, g in frame.groupby(["label", "source"], sort=True)]
    return pd.concat(parts).reset_index(drop=True)


def decode(paths: list[str], size: int) -> list[np.ndarray | None]:
    """uint8 (size, size, 3) RGB arrays as the product prepares them; None if unreadable."""
    def one(path):
        try:
            return images.prepare(Path(path).read_bytes(), size)[1]
        except (OSError, images.ImageError):
            return None
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, paths))


def folds(frame: pd.DataFrame, k: int, seed: int) -> list[list[str]]:
    """Sources split into k groups (each held out once), medical and non-medical dealt alternately."""
    rng = np.random.default_rng(seed)
    groups: list[list[str]] = [[] for _ in range(k)]
    i = 0
    for _, cls in frame.groupby("label"):
        sources = sorted(cls["source"].unique())
        rng.shuffle(sources)
        for s in sources:
            groups[i % k].append(s)
            i += 1
    return groups


# ----------------------------------------------------------------------------- methods

def feature_speed(extractor, batch: np.ndarray, repeats: int = 4) -> float:
    """Images/s of extractor on batches of 32 (after one warm-up batch); decoding excluded."""
    batch = batch[:32]
    extractor(batch, training=False)
    start = time.perf_counter()
    for _ in range(repeats):
        np.asarray(extractor(batch, training=False))
    return repeats * len(batch) / (time.perf_counter() - start)


def extract(extractor, x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(extractor(x[i:i + 32], training=False))
                           for i in range(0, len(x), 32)])


def logistic_predict(feats: np.ndarray, frame: pd.DataFrame, held_out: list[str], c: float) -> np.ndarray:
    """Fit on every source but ``held_out``; P(medical) for the held-out rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    test = frame["source"].isin(held_out).to_numpy()
    train = frame[~test].reset_index(drop=True)
    scaler = StandardScaler().fit(feats[~test])
    clf = LogisticRegression(C=c, max_iter=3000)
    clf.fit(scaler.transform(feats[~test]), train["label"], sample_weight=balanced_weights(train).to_numpy())
    return clf.predict_proba(scaler.transform(feats[test]))[:, 1]


def make_cnn(size: int):
    """4 conv blocks (conv-BN-ReLU, max-pool) -> global average pool -> one logit."""
    import keras
    from keras import layers
    inputs = keras.Input((size, size, 3), dtype="uint8")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = layers.RandomFlip("horizontal")(x)
    for filters in (16, 32, 64, 96):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, layers.Dense(1)(x), name="scratch_cnn")


def cnn_predict(x: np.ndarray, frame: pd.DataFrame, held_out: list[str], epochs: int, seed: int) -> np.ndarray:
    import keras
    keras.utils.set_random_seed(seed)
    test = frame["source"].isin(held_out).to_numpy()
    train = frame[~test].reset_index(drop=True)
    model = make_cnn(x.shape[1])
    model.compile(keras.optimizers.Adam(2e-3), keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x[~test], train["label"].to_numpy(np.float32), sample_weight=balanced_weights(train).to_numpy(),
              batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    logits = extract(model, x[test])[:, 0]
    return 1 / (1 + np.exp(-logits))


# ----------------------------------------------------------------------------- scoring

BIG_SOURCE = 20     # min accuracy is also reported over sources with at least this many images


def score(frame: pd.DataFrame, prob: np.ndarray) -> dict:
    """Per-source accuracy, their mean and min, and balanced accuracy over all predictions."""
    correct = (prob >= 0.5).astype(int) == frame["label"].to_numpy()
    per_source = pd.Series(correct).groupby(frame["source"].to_numpy()).mean()
    per_class = pd.Series(correct).groupby(frame["label"].to_numpy()).mean()
    sizes = frame["source"].value_counts()
    big = per_source[sizes[per_source.index].to_numpy() >= BIG_SOURCE]
    return {"per_source": per_source, "mean_source": per_source.mean(),
            "balanced": per_class.mean(), "min_source": per_source.min(),
            "worst": per_source.idxmin(), "min_big": big.min(), "worst_big": big.idxmin()}


def run_protocol(frame: pd.DataFrame, splits: list[list[str]], predict) -> dict:
    prob = np.full(len(frame), np.nan)
    for held_out in splits:
        prob[frame["source"].isin(held_out).to_numpy()] = predict(held_out)
    return score(frame, prob)


# ----------------------------------------------------------------------------- report

def write_report(path: Path, frame: pd.DataFrame, results: dict, speeds: dict, args, argv, seconds) -> None:
    lines = [
        "# Backbone comparison: packaged EfficientNet-Lite0 vs packaged nsfwjs MobileNetV2 vs from scratch",
        "",
        f"{len(frame)} images: up to {args.per_source} per source from {frame['source'].nunique()} sources "
        f"({(frame.label == 1).sum()} medical from {frame[frame.label == 1].source.nunique()} sources, "
        f"{(frame.label == 0).sum()} non-medical from {frame[frame.label == 0].source.nunique()}), seed {args.seed}. "
        "Every number is on sources the model never saw. *LOSO*: leave one source out; "
        f"*{args.folds}-fold*: sources split into {args.folds} groups, each held out once. "
        f"Head for a and b: StandardScaler + LogisticRegression(C={args.c}), class- and source-balanced "
        "sample weights, threshold 0.5. Speed: frozen feature extraction, batch 32, decoding excluded, "
        "2 CPU cores shared with another training job (relative, not absolute).",
        "",
        f"| method | protocol | mean source acc | balanced acc | min source acc (source) "
        f"| min acc, sources >= {BIG_SOURCE} imgs | features/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        method, protocol = name.split(" | ")
        speed = speeds.get(method)
        lines.append(f"| {method} | {protocol} | {res['mean_source']:.3f} | {res['balanced']:.3f} | "
                     f"{res['min_source']:.2f} ({res['worst']}) | {res['min_big']:.2f} ({res['worst_big']}) | "
                     f"{f'{speed:.0f}' if speed else 'n/a'} |")
    names = list(results)
    short = [f"{n[0]} {re.search(r'[0-9]+px', n).group()} {n.split(' | ')[1]}" for n in names]
    lines += ["", "Per-source accuracy (held out); columns: " + "; ".join(
        f"{s} = {n.replace(' | ', ', ')}" for s, n in zip(short, names)), ""]
    lines.append("| source | label | n | " + " | ".join(short) + " |")
    lines.append("|---|---|---|" + "---|" * len(names))
    counts = frame.groupby("source").agg(label=("label_name", "first"), n=("path", "size"))
    for source, row in counts.sort_values(["label", "n"], ascending=[True, False]).iterrows():
        accs = " | ".join(f"{results[n]['per_source'][source]:.2f}" for n in names)
        lines.append(f"| {source} | {row.label} | {row.n} | {accs} |")
    lines += ["", f"Run time {seconds / 60:.1f} min. Reproduce with:", "", "```",
              "python -m training.compare_backbones " + " ".join(shlex.quote(a) for a in argv), "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True, help="medical/ + non-medical/ tree (repeatable)")
    ap.add_argument("--per-source", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the logistic head")
    ap.add_argument("--folds", type=int, default=5, help="grouped folds for the from-scratch CNN")
    ap.add_argument("--nsfwjs-size", type=int, action="append", help="input size(s) for nsfwjs (224)")
    ap.add_argument("--nsfwjs-weights", default=None, help="converted weights (training.convert_nsfwjs --out)")
    ap.add_argument("--scratch-size", type=int, default=64)
    ap.add_argument("--scratch-epochs", type=int, default=20)
    ap.add_argument("--methods", default="abc", help="which of a, b, c to run (default abc)")
    ap.add_argument("--out", default="models/backbone-comparison.md")
    args = ap.parse_args(argv)
    sizes = args.nsfwjs_size or [224]
    started = time.perf_counter()

    frame = sample(scan(args.data), args.per_source, args.seed)
    print(f"{len(frame)} images from {frame.source.nunique()} sources", flush=True)
    needed = {128} if "a" in args.methods else set()
    needed |= set(sizes) if "b" in args.methods else set()
    needed |= {args.scratch_size} if "c" in args.methods else set()
    arrays = {s: decode(frame["path"].tolist(), s) for s in sorted(needed)}
    ok = np.array([all(a[i] is not None for a in arrays.values()) for i in range(len(frame))])
    frame = frame[ok].reset_index(drop=True)
    arrays = {s: np.stack([a for a, k in zip(v, ok) if k]) for s, v in arrays.items()}
    print(f"decoded {len(frame)} ({(~ok).sum()} unreadable dropped)", flush=True)

    loso = [[s] for s in sorted(frame["source"].unique())]
    grouped = folds(frame, args.folds, args.seed)
    feats, speeds = {}, {}

    if "a" in args.methods:
        from training.model import make_feature_extractor
        ext = make_feature_extractor(128)
        name = "a. EfficientNet-Lite0 128px"
        speeds[name] = feature_speed(ext, arrays[128])
        feats[name] = extract(ext, arrays[128])
        print(f"{name}: {feats[name].shape[1]}-d, {speeds[name]:.0f} img/s", flush=True)

    from training import convert_nsfwjs
    weights = args.nsfwjs_weights or convert_nsfwjs.DEFAULT_OUT
    if "b" in args.methods and not Path(weights).exists():
        raise SystemExit(f"{weights} missing: run python -m training.convert_nsfwjs --out {weights}")
    for size in sizes if "b" in args.methods else []:
        ext = convert_nsfwjs.make_feature_extractor(size, weights)
        name = f"b. nsfwjs MobileNetV2 {size}px"
        speeds[name] = feature_speed(ext, arrays[size])
        feats[name] = extract(ext, arrays[size])
        print(f"{name}: {feats[name].shape[1]}-d, {speeds[name]:.0f} img/s", flush=True)

    results = {}
    for name, f in feats.items():
        for protocol, splits in (("LOSO", loso), (f"{args.folds}-fold", grouped)):
            res = run_protocol(frame, splits, lambda h: logistic_predict(f, frame, h, args.c))
            results[f"{name} | {protocol}"] = res
            print(f"{name} {protocol}: mean source {res['mean_source']:.3f} balanced {res['balanced']:.3f} "
                  f"min {res['min_source']:.2f} ({res['worst']})", flush=True)

    if "c" in args.methods:
        name = f"c. scratch CNN {args.scratch_size}px, {args.scratch_epochs} ep | {args.folds}-fold"
        res = run_protocol(frame, grouped, lambda h: cnn_predict(arrays[args.scratch_size], frame, h,
                                                                 args.scratch_epochs, args.seed))
        results[name] = res
        print(f"{name}: mean source {res['mean_source']:.3f} balanced {res['balanced']:.3f} "
              f"min {res['min_source']:.2f} ({res['worst']})", flush=True)

    write_report(Path(args.out), frame, results, speeds, args, argv, time.perf_counter() - started)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
