"""The kind head of medcrawl-v3: one softmax class per kind of image, medical = the medical kinds' sum.

A single line between medical and non-medical has to cut through the grey scientific images; a
line around each kind does not. The head is a standardised multinomial logistic regression on the
product's frozen backbone features, each kind weighted equally and split equally over its upstream
datasets. Validation holds out whole upstream datasets: an image is scored *in-kind* when its kind
has another upstream in the training fold (what users meet: a new source of a known kind) and
*novel-kind* otherwise (reported, never selected on).

    python -m training.kindhead --manifest DATA/MANIFEST.csv --out models/medcrawl-v3 --work runs

reads a built training set (``python -m training.sources build``), fills the feature cache
(``training.featurecache``), writes the held-out reports under ``OUT/evaluation`` and the product
model (model.keras, model.tflite, model.json) to ``OUT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from training import metrics
from training.kinds import MEDICAL_KINDS, label_of



@dataclass
class KindHead:
    """Standardisation + multinomial logistic regression over ``kinds`` (absent kinds get -inf)."""

    kinds: list[str]
    scaler: StandardScaler
    model: LogisticRegression
    temperature: float = 1.0

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, len(kinds)) logits; kinds the head never saw stay at -inf."""
        out = np.full((len(x), len(self.kinds)), -np.inf, np.float64)
        out[:, self.model.classes_] = self.model.decision_function(self.scaler.transform(x))
        return out

    def kind_probabilities(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x) / self.temperature)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def kinds_of(frame: pd.DataFrame) -> list[str]:
    """The head's classes: the frame's kinds, medical ones first, each group sorted."""
    medical = set(frame.loc[frame["label"] == "medical", "kind"])
    return sorted(medical) + sorted(set(frame["kind"]) - medical)


def medical_mask(frame: pd.DataFrame, kinds: list[str]) -> np.ndarray:
    medical = set(frame.loc[frame["label"] == "medical", "kind"])
    return np.array([k in medical for k in kinds])


def medical_probability(kind_probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return kind_probs[:, mask].sum(axis=1)


def kind_weights(frame: pd.DataFrame) -> np.ndarray:
    """Each kind the same total weight, split equally over its upstreams, then over their images."""
    w = np.zeros(len(frame))
    for _, kind in frame.groupby("kind"):
        ups = kind.groupby("upstream").groups
        for idx in ups.values():
            w[frame.index.get_indexer(idx)] = 1.0 / (len(ups) * len(idx))
    return w * len(frame) / w.sum()


def fit(x: np.ndarray, frame: pd.DataFrame, kinds: list[str], c: float = 0.005,
        max_iter: int = 300) -> KindHead:
    scaler = StandardScaler().fit(x)
    y = frame["kind"].map(kinds.index).to_numpy()
    model = LogisticRegression(C=c, max_iter=max_iter, tol=1e-3)
    model.fit(scaler.transform(x), y, sample_weight=kind_weights(frame))
    return KindHead(kinds, scaler, model)


def fit_views(x: np.ndarray, frame: pd.DataFrame, rows: np.ndarray, kinds: list[str], **fit_args) -> KindHead:
    """Fit on every view (``x``: views, images, features; view 0 clean) of the chosen rows; a view
    an image could not give is left out."""
    xs = np.concatenate([view[rows] for view in x])
    fs = pd.concat([frame[rows]] * len(x), ignore_index=True)
    ok = ~np.isnan(xs).any(axis=1)
    return fit(xs[ok], fs[ok].reset_index(drop=True), kinds, **fit_args)


def upstream_folds(frame: pd.DataFrame, folds: int) -> list[list[str]]:
    """Upstreams dealt round-robin by size into ``folds`` groups: each is held out exactly once."""
    ups = frame["upstream"].value_counts().index.tolist()
    return [sorted(ups[k::folds]) for k in range(folds)]


def held_out(x: np.ndarray, frame: pd.DataFrame, folds: int, log=print, **fit_args) -> pd.DataFrame:
    """Per image: held-out logits of its kinds (of its clean view), whether its kind was in training
    (in_kind), its fold. ``x``: (images, features), or (views, images, features) to train on views."""
    x = x if x.ndim == 3 else x[None]
    kinds = kinds_of(frame)
    logits = np.full((len(frame), len(kinds)), np.nan)
    in_kind = np.zeros(len(frame), bool)
    fold_of = np.zeros(len(frame), int)
    for k, ups in enumerate(upstream_folds(frame, folds)):
        test = frame["upstream"].isin(ups).to_numpy()
        head = fit_views(x, frame, ~test, kinds, **fit_args)
        logits[test] = head.logits(x[0][test])
        in_kind[test] = frame.loc[test, "kind"].isin(set(frame.loc[~test, "kind"])).to_numpy()
        fold_of[test] = k
        log(f"  fold {k}: {len(ups)} upstreams, {test.sum()} images held out")
    out = frame.copy()
    out["in_kind"], out["fold"] = in_kind, fold_of
    return out.assign(**{f"z_{kind}": logits[:, i] for i, kind in enumerate(kinds)})


def logits_of(scored: pd.DataFrame) -> np.ndarray:
    return scored[[f"z_{k}" for k in kinds_of(scored)]].to_numpy()


def fit_temperature(scored: pd.DataFrame) -> float:
    """The temperature minimising the medical/non-medical log loss of the in-kind held-out images."""
    sel = scored[scored["in_kind"]]
    y, z = (sel["label"] == "medical").to_numpy(), logits_of(scored)[scored["in_kind"].to_numpy()]
    mask = medical_mask(scored, kinds_of(scored))
    best = (np.inf, 1.0)
    for t in np.exp(np.linspace(np.log(0.2), np.log(5), 61)):
        p = np.clip(medical_probability(softmax(z / t), mask), 1e-7, 1 - 1e-7)
        best = min(best, (float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))), float(t)))
    return best[1]


# ---- the command: held-out reports, then the product model ------------------------------------

def read_manifests(paths: list[Path]) -> pd.DataFrame:
    """Images of one or more built MANIFEST.csv files: path (absolute), label, source, kind, upstream."""
    frames = []
    for manifest in paths:
        m = pd.read_csv(manifest, keep_default_na=False)
        m["path"] = [str(manifest.parent / p) for p in m["path"]]
        frames.append(m[["path", "sha256", "label", "source", "kind", "upstream"]])
    frame = pd.concat(frames, ignore_index=True).drop_duplicates("sha256").reset_index(drop=True)
    for kind, label in frame.groupby("kind")["label"].first().items():
        if label != label_of(kind):
            raise SystemExit(f"kind {kind!r} is labelled {label!r}; training.kinds says {label_of(kind)!r}")
    return frame


def probabilities(scored: pd.DataFrame, temperature: float) -> np.ndarray:
    kinds = kinds_of(scored)
    return medical_probability(softmax(logits_of(scored) / temperature), medical_mask(scored, kinds))


def modality_accuracy(scored: pd.DataFrame, temperature: float) -> float:
    """Share of in-kind medical images whose medical kinds' softmax names their modality."""
    kinds = np.array(kinds_of(scored))
    mask = medical_mask(scored, list(kinds))
    sel = (scored["in_kind"] & (scored["label"] == "medical")).to_numpy()
    top = kinds[mask][np.nan_to_num(logits_of(scored)[sel][:, mask], nan=-np.inf).argmax(axis=1)]
    truth = scored.loc[sel, "kind"].map(MEDICAL_KINDS).to_numpy()
    return float((np.vectorize(MEDICAL_KINDS.get)(top) == truth).mean()) if sel.any() else float("nan")


def report(scored: pd.DataFrame, temperature: float, eval_dir: Path) -> dict:
    """In-kind and novel-kind reports, the in-kind folder curve and the defaults it gives."""
    held = scored.assign(label_name=scored["label"], label=(scored["label"] == "medical").astype(int),
                         prob=probabilities(scored, temperature))
    out: dict = {"temperature": temperature, "threshold": 0.5}
    for part, rows in (("inkind", held[held["in_kind"]]), ("novelkind", held[~held["in_kind"]])):
        if rows["label"].nunique() < 2:
            continue
        summary = metrics.summarize(rows.reset_index(drop=True), 0.5)
        metrics.print_summary(f"held-out upstreams, {part}", summary)
        metrics.write_report(rows.drop(columns=[c for c in rows if c.startswith("z_")]), summary,
                             eval_dir, f"heldout_{part}_")
        out[part] = {k: summary[k] for k in ("images", "accuracy", "balanced_accuracy", "ece", "roc_auc",
                                             "mean_source_accuracy", "min_source_accuracy")}
    inkind = held[held["in_kind"]]
    curve = metrics.folder_curve(inkind["label"].to_numpy(), inkind["prob"].to_numpy(), 0.5)
    chosen = metrics.choose_min_confidence(curve, 0.99)
    curve.to_csv(eval_dir / "heldout_inkind_folder_curve.csv", index=False)
    metrics.plot_folder_curve(curve, chosen, eval_dir / "heldout_inkind_folder_curve.png")
    at = curve[curve["min_confidence"] == chosen].iloc[0]
    out.update(dataset_min_confidence=chosen,
               dataset_folder={k: float(at[k]) for k in ("purity", "balanced_purity", "recall")},
               modality_inkind_accuracy=modality_accuracy(scored, temperature))
    print(f"medical/ folder at {chosen:.2f}: purity {at['purity']:.4f}, kept {at['recall']:.4f}; "
          f"in-kind modality accuracy {out['modality_inkind_accuracy']:.4f}")
    return out


def export(head: KindHead, frame: pd.DataFrame, args, meta: dict) -> dict:
    """The product model directory: backbone + this head, LiteRT and Keras, model.json."""
    from medcrawl.model.classifier import MODALITIES
    from training.export import save_model_dir
    from training.model import make_kind_model
    medical = medical_mask(frame, head.kinds)
    used = [m for m in MODALITIES if m in {MEDICAL_KINDS[k] for k in np.array(head.kinds)[medical]}]
    one_hot = np.array([[MEDICAL_KINDS[k] == m for m in used] for k in np.array(head.kinds)[medical]])
    kernel = np.zeros((head.scaler.mean_.size, len(head.kinds)), np.float32)
    bias = np.full(len(head.kinds), -1e4, np.float32)          # kinds never seen: never chosen
    kernel[:, head.model.classes_] = head.model.coef_.T / head.temperature
    bias[head.model.classes_] = head.model.intercept_ / head.temperature
    model = make_kind_model(args.size, args.backbone, head.scaler.mean_, head.scaler.var_ + 1e-12,
                            kernel, bias, medical, one_hot)
    probe_paths = frame["path"].iloc[:: max(1, len(frame) // 64)]
    from training import featurecache
    probe = np.stack([v for v in (featurecache.product_view(p, args.size) for p in probe_paths) if v is not None])
    meta = {**meta, "modalities": used, "kinds": head.kinds,
            "medical_kinds": [k for k, m in zip(head.kinds, medical) if m]}
    return save_model_dir(model, args.out, meta, probe)


def main(argv=None) -> dict:
    import argparse
    import json
    from training import featurecache
    p = argparse.ArgumentParser(description="Train and evaluate the kind head; export the product model.")
    p.add_argument("--manifest", type=Path, action="append", required=True, help="a built MANIFEST.csv")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--work", type=Path, default=Path("runs"), help="feature cache")
    p.add_argument("--backbone", default="lite0")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--folds", type=int, default=10, help="groups of upstream datasets held out in turn")
    p.add_argument("-C", type=float, default=0.005, dest="c", help="inverse L2 strength (0.005: best in-kind of 0.002-0.2)")
    p.add_argument("--views", type=int, default=2, help="1 clean + N-1 augmented views to train on "
                   "(scored on the clean view; 2: modality 0.912 vs 0.884 with the clean view alone)")
    p.add_argument("--version", default="3")
    p.add_argument("--no-export", action="store_true")
    args = p.parse_args(argv)
    frame = read_manifests(args.manifest)
    paths = frame["path"].tolist()
    x = np.stack([np.stack(list(featurecache.fill(paths, args.work, args.backbone, args.size, view=v).values()))
                  for v in range(args.views)])
    readable = ~np.isnan(x[0]).any(axis=1)
    frame, x = frame[readable].reset_index(drop=True), x[:, readable]
    print(f"{len(frame)} images, {frame['source'].nunique()} sources, {frame['upstream'].nunique()} upstreams, "
          f"{frame['kind'].nunique()} kinds ({(~readable).sum()} unreadable dropped)")
    eval_dir = args.out / "evaluation"
    eval_dir.mkdir(parents=True, exist_ok=True)
    scored = held_out(x, frame, args.folds, c=args.c)
    meta = {"name": args.out.name, "version": args.version, "engine": "litert",
            "labels": ["non-medical", "medical"],
            "backbone": f"EfficientNet-{args.backbone.replace('lite', 'Lite')} (ImageNet), frozen",
            "head": f"kinds: standardised multinomial logistic regression, C={args.c}, "
                    f"{args.views} view(s) (1 clean + augmented)",
            "training": {"manifests": [str(m) for m in args.manifest], "images": int(len(frame)),
                         "sources": int(frame["source"].nunique()), "upstreams": int(frame["upstream"].nunique()),
                         "folds": args.folds, "input_size": args.size}}
    meta.update(report(scored, fit_temperature(scored), eval_dir))
    meta["modality_min_confidence"] = 0.5
    (eval_dir / "heldout_summary.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    if args.no_export:
        return meta
    head = fit_views(x, frame, np.ones(len(frame), bool), kinds_of(frame), c=args.c)
    head.temperature = meta["temperature"]
    meta = export(head, frame, args, meta)
    print(f"saved {args.out} (temperature {head.temperature:.3f}, LiteRT max diff {meta['litert_max_abs_diff']:.2e})")
    return meta


if __name__ == "__main__":
    main()
