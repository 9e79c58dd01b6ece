"""The kind head end to end on a tiny generated dataset: upstream folds, in-kind and novel-kind
reports, and a product model whose two outputs the product's Classifier reads."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from medcrawl.model.classifier import Classifier
from training import kindhead
from test_training import ct_slice, drawing, radiograph

pytestmark = pytest.mark.slow

# kind -> (label, picture maker); two upstreams per kind, so every held-out source is in-kind.
KINDS = {"xray-chest": ("medical", radiograph), "ct": ("medical", ct_slice),
         "chart": ("non-medical", drawing)}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    rng = np.random.default_rng(1)
    rows = []
    for kind, (label, make) in KINDS.items():
        for upstream in ("u1", "u2"):
            source = f"{kind}-{upstream}"
            (root / label / source).mkdir(parents=True)
            for i in range(6):
                path = f"{label}/{source}/{i}.png"
                make(rng).save(root / path)
                rows.append({"path": path, "sha256": kindhead_sha(root / path), "label": label,
                             "source": source, "kind": kind, "upstream": f"{kind}:{upstream}"})
    with open(root / "MANIFEST.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "MANIFEST.csv"


def kindhead_sha(path) -> str:
    from training.featurecache import file_sha256
    return file_sha256(str(path))


def test_weights_give_each_kind_the_same_total_split_over_its_upstreams(manifest):
    frame = kindhead.read_manifests([manifest]).iloc[:-3]          # one upstream now has 3 images
    w = kindhead.kind_weights(frame)
    totals = frame.assign(w=w).groupby("kind")["w"].sum()
    assert np.allclose(totals, totals.iloc[0])
    per_upstream = frame.assign(w=w).groupby(["kind", "upstream"])["w"].sum()
    assert np.allclose(per_upstream["chart"], per_upstream["chart"].iloc[0])


def test_folds_hold_out_every_upstream_once(manifest):
    frame = kindhead.read_manifests([manifest])
    folds = kindhead.upstream_folds(frame, 4)
    held = [u for fold in folds for u in fold]
    assert sorted(held) == sorted(frame["upstream"].unique())


def test_training_writes_a_model_the_product_loads(manifest, tmp_path):
    out = tmp_path / "kinds-model"
    meta = kindhead.main(["--manifest", str(manifest), "--out", str(out), "--work", str(tmp_path / "runs"),
                          "--size", "64", "--folds", "3", "-C", "1.0"])
    assert meta["kinds"] == ["ct", "xray-chest", "chart"] and meta["modalities"] == ["xray", "ct"]
    assert meta["inkind"]["images"] == 36 and 0.5 <= meta["inkind"]["balanced_accuracy"] <= 1
    assert (out / "evaluation" / "heldout_inkind_report.md").is_file()
    assert json.loads((out / "model.json").read_text())["dataset_min_confidence"] == meta["dataset_min_confidence"]
    clf = Classifier.load(out)
    rng = np.random.default_rng(7)
    pictures = [radiograph(rng), ct_slice(rng), drawing(rng)]
    arrays = [clf.prepare(_png(p))[1] for p in pictures]
    out_all = clf.predict_all(np.stack(arrays))
    assert np.allclose(out_all.modality.sum(axis=1), 1, atol=1e-4)      # a distribution over modalities
    verdicts = clf.classify_arrays(arrays)
    assert [v.label for v in verdicts] == ["medical", "medical", "non-medical"]
    assert [v.modality for v in verdicts[:2]] == ["xray", "ct"]


def _png(img: Image.Image) -> bytes:
    import io
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
