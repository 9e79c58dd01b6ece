"""Find labelled images in folder trees: ``medical/<source>/**`` and ``non-medical/<source>/**``,
also below split folders (``<split>/medical/...``, a crawl's dataset with MEDCRAWL_DATASET_SPLITS)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medcrawl.corrections import DatasetDir

LABELS = ("non-medical", "medical")          # index = class id
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


def scan(roots: list[str | Path]) -> pd.DataFrame:
    """One row per image: path, label (0/1), label_name, source (first folder under the label), root.

    A reviewed dataset's ``corrections.csv`` has the last word on an image's label (by sha256, the
    file's name): an image a reviewer found unusable is left out; ``uncertain/`` is never read.
    Every split of a split dataset is read.
    """
    rows = []
    for root in map(Path, roots):
        found, reviewed = 0, DatasetDir(root).corrections()
        for name in LABELS:
            for base in label_folders(root, name):
                for path in sorted(base.rglob("*")):
                    label = reviewed[path.stem].new_label if path.stem in reviewed else name
                    if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and label in LABELS:
                        rel = path.relative_to(base).parts
                        source = rel[0] if len(rel) > 1 else root.name
                        rows.append((str(path), LABELS.index(label), label, source, str(root)))
                        found += 1
        if not found:
            raise SystemExit(f"no images under {root}/medical or {root}/non-medical")
    return pd.DataFrame(rows, columns=["path", "label", "label_name", "source", "root"])


def label_folders(root: Path, label: str) -> list[Path]:
    """``root/<label>`` and ``root/<split>/<label>`` that exist."""
    if not root.is_dir():
        return []
    splits = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name not in LABELS]
    return [folder for folder in (root / label, *(d / label for d in splits)) if folder.is_dir()]


def balanced_weights(frame: pd.DataFrame) -> pd.Series:
    """Sample weights giving each class equal total weight, split equally over its sources."""
    weights = pd.Series(1.0, index=frame.index)
    for _, cls in frame.groupby("label"):
        per_source = cls.groupby("source").size()
        for source, count in per_source.items():
            idx = cls.index[cls["source"] == source]
            weights[idx] = 1.0 / (len(per_source) * count)
    return weights * len(frame) / weights.sum()


def sample(frame: pd.DataFrame, per_source: int, seed: int = 1234) -> pd.DataFrame:
    """At most ``per_source`` images of every source (seeded), for quick comparisons; 0 keeps all."""
    if not per_source:
        return frame
    keep = [i for _, g in frame.groupby("source", sort=False)
            for i in g.sample(min(len(g), per_source), random_state=seed).index]
    return frame.loc[sorted(keep)].reset_index(drop=True)
