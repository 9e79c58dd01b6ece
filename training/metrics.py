"""Metrics and plots shared by training (held-out folds) and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from sklearn import metrics as skm

from training.data import LABELS


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """ECE of the medical probability over equal-width bins."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(total)


def choose_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold with the best balanced accuracy (ties: closest to 0.5)."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    scores = [skm.balanced_accuracy_score(y, p >= t) for t in grid]
    best = max(scores)
    return float(min((t for t, s in zip(grid, scores) if s >= best - 1e-9), key=lambda t: abs(t - 0.5)))


def fit_platt(y: np.ndarray, logits: np.ndarray) -> tuple[float, float]:
    """Scale and bias minimising the log loss of sigmoid(scale * logit + bias) (Platt scaling)."""
    def nll(params):
        z = params[0] * logits + params[1]
        return float(np.mean(np.logaddexp(0, z) - y * z))
    scale, bias = minimize(nll, [1.0, 0.0], method="Nelder-Mead").x
    return float(scale), float(bias)


def platt(logits: np.ndarray, scale: float, bias: float) -> np.ndarray:
    """Calibrated probabilities."""
    return 1 / (1 + np.exp(-(scale * logits + bias)))


def summarize(frame: pd.DataFrame, threshold: float, calibration: str = "prob") -> dict:
    """Metrics for a frame with columns label (0/1), prob, source; ECE of the ``calibration`` column."""
    y, p = frame["label"].to_numpy(), frame["prob"].to_numpy()
    pred = (p >= threshold).astype(int)
    per_source = (frame.assign(correct=pred == y).groupby(["label_name", "source"])
                  .agg(images=("correct", "size"), accuracy=("correct", "mean")).reset_index())
    out = {
        "images": int(len(frame)),
        "threshold": threshold,
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
        "ece": expected_calibration_error(y, frame[calibration].to_numpy()),
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "report": skm.classification_report(y, pred, labels=[0, 1], target_names=list(LABELS),
                                            digits=4, zero_division=0),
        "per_source": per_source.to_dict("records"),
        "mean_source_accuracy": float(per_source["accuracy"].mean()),
        "min_source_accuracy": float(per_source["accuracy"].min()),
    }
    out["roc_auc"] = float(skm.roc_auc_score(y, p)) if len(set(y)) == 2 else None
    return out


def print_summary(title: str, summary: dict) -> None:
    """Human-readable report on stdout."""
    print(f"== {title}: {summary['images']} images, threshold {summary['threshold']:.2f}")
    print(summary["report"])
    print("confusion matrix (rows true non-medical/medical, cols predicted):", summary["confusion_matrix"])
    auc = summary["roc_auc"]
    print(f"accuracy {summary['accuracy']:.4f}  balanced accuracy {summary['balanced_accuracy']:.4f}  "
          f"ROC AUC {auc if auc is None else round(auc, 4)}  ECE {summary['ece']:.4f}")
    print(f"{'label':12s} {'source':28s} {'images':>7s} {'accuracy':>9s}")
    for row in summary["per_source"]:
        print(f"{row['label_name']:12s} {row['source']:28s} {row['images']:7d} {row['accuracy']:9.4f}")
    print(f"mean source accuracy {summary['mean_source_accuracy']:.4f}, "
          f"min {summary['min_source_accuracy']:.4f}")


def write_report(frame: pd.DataFrame, summary: dict, out_dir: Path, prefix: str,
                 calibration: str = "prob") -> None:
    """metrics JSON, predictions CSV and the three PNG plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{prefix}metrics.json").write_text(json.dumps(summary, indent=2))
    (out_dir / f"{prefix}report.md").write_text(markdown_report(summary))
    frame.to_csv(out_dir / f"{prefix}predictions.csv", index=False)
    plot_all(frame["label"].to_numpy(), frame["prob"].to_numpy(), frame[calibration].to_numpy(),
             summary, out_dir, prefix)


def markdown_report(summary: dict) -> str:
    """The headline figures and the per-source accuracy table, as Markdown."""
    auc = summary["roc_auc"]
    lines = [f"{summary['images']} images, threshold {summary['threshold']:.2f}", "",
             "| accuracy | balanced accuracy | ROC AUC | ECE | mean source accuracy | min source accuracy |",
             "|---|---|---|---|---|---|",
             f"| {summary['accuracy']:.4f} | {summary['balanced_accuracy']:.4f} | "
             f"{'-' if auc is None else f'{auc:.4f}'} | {summary['ece']:.4f} | "
             f"{summary['mean_source_accuracy']:.4f} | {summary['min_source_accuracy']:.4f} |", "",
             f"Confusion matrix (rows true non-medical/medical, columns predicted): {summary['confusion_matrix']}",
             "", "| label | source | images | accuracy |", "|---|---|---|---|"]
    lines += [f"| {r['label_name']} | {r['source']} | {r['images']} | {r['accuracy']:.4f} |"
              for r in summary["per_source"]]
    return "\n".join(lines) + "\n"


def plot_all(y, p, p_calibration, summary, out_dir: Path, prefix: str) -> None:
    """Confusion matrix, ROC curve (of p) and reliability diagram (of p_calibration) as PNG files."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    skm.ConfusionMatrixDisplay(np.array(summary["confusion_matrix"]), display_labels=LABELS).plot(
        ax=ax, colorbar=False)
    ax.set_title("Confusion matrix")
    fig.tight_layout(); fig.savefig(out_dir / f"{prefix}confusion_matrix.png", dpi=120); plt.close(fig)

    fig, ax = plt.subplots(figsize=(4, 4))
    if len(set(y)) == 2:
        skm.RocCurveDisplay.from_predictions(y, p, ax=ax)
    ax.set_title(f"ROC (AUC {summary['roc_auc'] or float('nan'):.4f})")
    fig.tight_layout(); fig.savefig(out_dir / f"{prefix}roc.png", dpi=120); plt.close(fig)

    fig, ax = plt.subplots(figsize=(4, 4))
    edges, q = np.linspace(0, 1, 16), p_calibration
    idx = np.clip(np.digitize(q, edges[1:-1]), 0, 14)
    centers = [(q[idx == b].mean(), y[idx == b].mean()) for b in range(15) if (idx == b).any()]
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.plot(*zip(*centers), "o-")
    ax.set_xlabel("predicted medical probability"); ax.set_ylabel("fraction medical")
    ax.set_title(f"Reliability (ECE {summary['ece']:.4f})")
    fig.tight_layout(); fig.savefig(out_dir / f"{prefix}reliability.png", dpi=120); plt.close(fig)


def folder_curve(y: np.ndarray, p: np.ndarray, threshold: float) -> pd.DataFrame:
    """Purity and recall of the dataset's ``medical/`` folder (label medical and confidence >= c) for
    min confidences c from 0.50 to 0.99; purity also with both classes weighted equally."""
    rows = []
    for c in np.round(np.arange(0.5, 0.991, 0.01), 2):
        kept = p >= max(threshold, c)
        tpr, fpr = kept[y == 1].mean(), kept[y == 0].mean()
        rows.append({"min_confidence": float(c), "purity": float(y[kept].mean()) if kept.any() else 1.0,
                     "balanced_purity": float(tpr / (tpr + fpr)) if tpr + fpr else 1.0,
                     "recall": float(tpr), "false_positive_rate": float(fpr)})
    return pd.DataFrame(rows)


def choose_min_confidence(curve: pd.DataFrame, purity: float = 0.99) -> float:
    """Lowest min confidence whose folder is at least ``purity`` pure (both measures); else the purest."""
    ok = curve[(curve["purity"] >= purity) & (curve["balanced_purity"] >= purity)]
    return float(ok["min_confidence"].min() if len(ok) else
                 curve.loc[curve["balanced_purity"].idxmax(), "min_confidence"])


def plot_folder_curve(curve: pd.DataFrame, chosen: float, out: Path) -> None:
    """Purity and recall of the medical/ folder against the min confidence, the default marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(curve["min_confidence"], curve["purity"], label="purity")
    ax.plot(curve["min_confidence"], curve["balanced_purity"], "--", label="purity (classes equal)")
    ax.plot(curve["min_confidence"], curve["recall"], label="medical images kept")
    ax.axvline(chosen, color="k", lw=1, ls=":", label=f"default {chosen:.2f}")
    ax.set_xlabel("MEDCRAWL_DATASET_MIN_CONFIDENCE"); ax.set_ylim(0.5, 1.005); ax.legend(loc="lower left")
    ax.set_title("medical/ folder on held-out sources")
    fig.tight_layout(); fig.savefig(out, dpi=120); plt.close(fig)
