"""The modality head's labels, weights and held-out report.

Every medical image gets its modality from the MANIFEST.csv of its data folder (``ROOT/MANIFEST.csv``
or a ``--manifest`` file whose ``path`` column is relative to a data root), mapped onto MODALITIES.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medcrawl.labels import MODALITIES, OTHER_MODALITY as OTHER  # the product's list

MAX_WEIGHT = 20.0        # times the mean weight
# Manifest values that are a kind of one of MODALITIES.
ALIASES = {"dental-xray": "xray", "mammography": "xray", "radiograph": "xray", "fluoroscopy": "xray",
           "angiography": "xray", "histology": "microscopy", "immunohistochemistry": "microscopy",
           "cytology": "microscopy", "blood-smear": "microscopy", "electron-microscopy": "microscopy",
           "fluorescence": "microscopy", "mr": "mri", "us": "ultrasound", "nm": "nuclear",
           "pet": "nuclear", "spect": "nuclear", "scintigraphy": "nuclear", "dx": "xray", "cr": "xray",
           "mg": "xray", "xa": "xray", "rf": "xray", "px": "xray", "io": "xray", "op": "fundus",
           "es": "endoscopy", "sm": "microscopy"}


def to_modality(value) -> str | None:
    """A manifest value mapped onto MODALITIES; None if it names none of them."""
    value = str(value).strip().lower() if isinstance(value, str) else ""
    value = ALIASES.get(value, value)
    return value if value in MODALITIES else None


def read_manifests(roots: list[str], extra: list[str] = ()) -> dict[str, str]:
    """Absolute image path -> raw modality value, from ROOT/MANIFEST.csv and the extra manifests."""
    found = {}
    for root in map(Path, roots):
        for manifest in [root / "MANIFEST.csv", *map(Path, extra)]:
            if manifest.is_file():
                table = pd.read_csv(manifest, usecols=["path", "modality"], dtype=str)
                found.update({str(root / p): m for p, m in zip(table["path"], table["modality"])})
    return found


def attach(frame: pd.DataFrame, roots: list[str], extra: list[str] = ()) -> pd.DataFrame:
    """Add ``modality`` (name or "") and ``modality_id`` (index or -1) to medical rows with a known modality."""
    raw = read_manifests(roots, extra)
    names = [to_modality(raw.get(p)) if y == 1 else None for p, y in zip(frame["path"], frame["label"])]
    return frame.assign(modality=[n or "" for n in names],
                        modality_id=[MODALITIES.index(n) if n else -1 for n in names])


def balanced_weights(frame: pd.DataFrame) -> np.ndarray:
    """Each modality equal total weight, split equally over its sources, no image above MAX_WEIGHT
    (a class of a handful of images must not dominate); 0 for rows without a modality."""
    w = np.zeros(len(frame))
    labelled = frame[frame["modality_id"] >= 0]
    classes = labelled.groupby("modality_id")
    for _, cls in classes:
        per_source = cls.groupby("source").size()
        for source, count in per_source.items():
            w[cls.index[cls["source"] == source]] = 1.0 / (len(per_source) * count * len(classes))
    w = w * len(labelled)
    return np.minimum(w, MAX_WEIGHT).astype("float32")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def decide(probs: np.ndarray, min_confidence: float) -> np.ndarray:
    """Predicted modality names, OTHER where the top probability is below min_confidence."""
    top = probs.argmax(axis=1)
    return np.where(probs.max(axis=1) >= min_confidence, np.array(MODALITIES)[top], OTHER)


def choose_min_confidence(truth: np.ndarray, probs: np.ndarray) -> float:
    """The min confidence (0.20..0.90) at which naming a modality gains most: a right name counts +1,
    a wrong one -1, ``other`` 0 (so a row says other where its guess is more often wrong than right)."""
    grid = np.round(np.arange(0.2, 0.901, 0.05), 2)
    gains = [float(np.where(decide(probs, t) == OTHER, 0, np.where(decide(probs, t) == truth, 1, -1)).sum())
             for t in grid]
    return float(grid[int(np.argmax(gains))])


def summarize(frame: pd.DataFrame, probs: np.ndarray, min_confidence: float) -> dict:
    """Held-out modality metrics over medical rows with a known modality: accuracy (OTHER counts as
    wrong; also over modalities of two or more sources only, the ones a held-out source can show),
    top-1 accuracy, share of OTHER, per modality (with its number of sources) and per source."""
    rows = (frame["modality_id"] >= 0).to_numpy()
    sub, p = frame[rows].reset_index(drop=True), probs[rows]
    truth, said = sub["modality"].to_numpy(), decide(p, min_confidence)
    top1 = np.array(MODALITIES)[p.argmax(axis=1)]
    scored = sub.assign(correct=said == truth, top1=top1 == truth, other=said == OTHER, predicted=said)
    per_modality = (scored.groupby("modality").agg(images=("correct", "size"), sources=("source", "nunique"),
                                                   accuracy=("correct", "mean"), top1=("top1", "mean"),
                                                   other=("other", "mean")).reset_index())
    per_source = (scored.groupby(["modality", "source"]).agg(images=("correct", "size"),
                                                             accuracy=("correct", "mean")).reset_index())
    multi = per_modality.loc[per_modality["sources"] >= 2, "modality"]
    labels = [*MODALITIES, OTHER]
    from sklearn.metrics import confusion_matrix
    return {"images": int(len(sub)), "min_confidence": min_confidence,
            "accuracy": float(scored["correct"].mean()), "top1_accuracy": float(scored["top1"].mean()),
            "other_share": float(scored["other"].mean()),
            "accuracy_multi_source": float(scored.loc[scored["modality"].isin(multi), "correct"].mean()),
            "per_modality": per_modality.to_dict("records"), "per_source": per_source.to_dict("records"),
            "labels": labels, "confusion_matrix": confusion_matrix(truth, said, labels=labels).tolist()}


def markdown(summary: dict) -> str:
    """The modality figures as Markdown tables."""
    lines = [f"{summary['images']} medical images, min confidence {summary['min_confidence']:.2f}: "
             f"accuracy {summary['accuracy']:.4f} (top-1 {summary['top1_accuracy']:.4f}; modalities of "
             f"two or more sources {summary['accuracy_multi_source']:.4f}), `other` {summary['other_share']:.1%}", "",
             "| modality | sources | images | accuracy | top-1 | other |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['modality']} | {r['sources']} | {r['images']} | {r['accuracy']:.4f} | "
              f"{r['top1']:.4f} | {r['other']:.1%} |" for r in summary["per_modality"]]
    lines += ["", "| modality | source | images | accuracy |", "|---|---|---|---|"]
    lines += [f"| {r['modality']} | {r['source']} | {r['images']} | {r['accuracy']:.4f} |"
              for r in summary["per_source"]]
    return "\n".join(lines) + "\n"


def write_report(frame: pd.DataFrame, probs: np.ndarray, summary: dict, out_dir: Path, prefix: str) -> None:
    """modality metrics JSON, Markdown, predictions CSV and the confusion matrix PNG."""
    import json
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{prefix}modality_metrics.json").write_text(json.dumps(summary, indent=2))
    (out_dir / f"{prefix}modality_report.md").write_text(markdown(summary))
    rows = (frame["modality_id"] >= 0).to_numpy()
    frame[rows][["path", "source", "modality"]].assign(
        predicted=decide(probs[rows], summary["min_confidence"]), confidence=probs[rows].max(axis=1)
    ).to_csv(out_dir / f"{prefix}modality_predictions.csv", index=False)
    fig, ax = plt.subplots(figsize=(7, 7))
    ConfusionMatrixDisplay(np.array(summary["confusion_matrix"]), display_labels=summary["labels"]).plot(
        ax=ax, colorbar=False, xticks_rotation=60)
    ax.set_title(f"Modality on held-out sources (accuracy {summary['accuracy']:.3f})")
    fig.tight_layout(); fig.savefig(out_dir / f"{prefix}modality_confusion_matrix.png", dpi=110); plt.close(fig)
