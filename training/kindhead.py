"""The kind head of medcrawl-v3: one softmax class per kind of image, medical = the medical kinds' sum.

A single line between medical and non-medical has to cut through the grey scientific images; a
line around each kind does not. The head is a standardised multinomial logistic regression on the
product's frozen backbone features, each kind weighted equally and split equally over its upstream
datasets. Validation holds out whole upstream datasets: an image is scored *in-kind* when its kind
has another upstream in the training fold (what users meet: a new source of a known kind) and
*novel-kind* otherwise (reported, never selected on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler



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


def fit(x: np.ndarray, frame: pd.DataFrame, kinds: list[str], c: float = 0.05,
        max_iter: int = 300) -> KindHead:
    scaler = StandardScaler().fit(x)
    y = frame["kind"].map(kinds.index).to_numpy()
    model = LogisticRegression(C=c, max_iter=max_iter, tol=1e-3)
    model.fit(scaler.transform(x), y, sample_weight=kind_weights(frame))
    return KindHead(kinds, scaler, model)


def upstream_folds(frame: pd.DataFrame, folds: int) -> list[list[str]]:
    """Upstreams dealt round-robin by size into ``folds`` groups: each is held out exactly once."""
    ups = frame["upstream"].value_counts().index.tolist()
    return [sorted(ups[k::folds]) for k in range(folds)]


def held_out(x: np.ndarray, frame: pd.DataFrame, folds: int, log=print, **fit_args) -> pd.DataFrame:
    """Per image: held-out logits of its kinds, whether its kind was in training (in_kind), its fold."""
    kinds = kinds_of(frame)
    logits = np.full((len(frame), len(kinds)), np.nan)
    in_kind = np.zeros(len(frame), bool)
    fold_of = np.zeros(len(frame), int)
    for k, ups in enumerate(upstream_folds(frame, folds)):
        test = frame["upstream"].isin(ups).to_numpy()
        head = fit(x[~test], frame[~test], kinds, **fit_args)
        logits[test] = head.logits(x[test])
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
