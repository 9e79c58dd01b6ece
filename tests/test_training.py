"""Training and evaluation end to end on a tiny generated dataset, and the model API's errors."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.support.modality_model import corrupted_copy
from medcrawl.model.classifier import Classifier, ModelError
from training import evaluate, train


def radiograph(rng) -> Image.Image:
    """Grey, smooth, centred bright body on black: a stand-in medical image."""
    y, x = np.mgrid[-1:1:96j, -1:1:96j]
    body = np.exp(-((x / rng.uniform(0.3, 0.6)) ** 2 + (y / rng.uniform(0.4, 0.8)) ** 2))
    arr = (body * 220 + rng.normal(0, 12, body.shape)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(arr, "L")


def drawing(rng) -> Image.Image:
    """Bright flat-coloured shapes on white: a stand-in logo or chart."""
    img = Image.new("RGB", (96, 96), "white")
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = rng.integers(0, 60, 2)
        draw.rectangle([x0, y0, x0 + 30, y0 + 30], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return img


def ct_slice(rng) -> Image.Image:
    """Grey ring (skull/body outline) around mottled grey on black: a stand-in CT slice."""
    y, x = np.mgrid[-1:1:96j, -1:1:96j]
    r = np.hypot(x / rng.uniform(0.7, 0.9), y / rng.uniform(0.7, 0.9))
    arr = np.where(r < 0.8, 90 + rng.normal(0, 25, r.shape), 0) + np.where(abs(r - 0.85) < 0.05, 230, 0)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "L")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two sources per class; each medical source holds radiographs (xray) and CT slices (ct),
    named in MANIFEST.csv as the training pack does."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    rows = ["path,modality"]
    for label in ("medical", "non-medical"):
        for source in ("a", "b"):
            folder = root / label / f"{label}-{source}"
            folder.mkdir(parents=True)
            for i in range(8):
                make = drawing if label == "non-medical" else radiograph if i % 2 else ct_slice
                make(rng).save(folder / f"{i}.png")
                if label == "medical":
                    rows.append(f"{label}/{label}-{source}/{i}.png,{'xray' if i % 2 else 'ct'}")
    (root / "MANIFEST.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def model_dir(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "tiny"
    work = tmp_path_factory.mktemp("work")
    args = ["--data", str(dataset), "--out", str(out), "--work", str(work), "--views", "2", "--epochs", "3"]
    train.main(args)
    folds_dir = next((work / "folds").glob("tiny-*"))
    assert sorted(p.name for p in folds_dir.glob("*.npy")) == [
        "medical-a.npy", "medical-b.npy", "non-medical-a.npy", "non-medical-b.npy"]
    # the modality head is held out by medical source only
    assert sorted(p.name for p in (folds_dir / "modality-0").iterdir()) == ["medical-a.npy", "medical-b.npy"]
    train.main(args)      # a rerun resumes from the cached features and folds
    return out


@pytest.mark.slow
def test_training_writes_a_loadable_model_with_heldout_metrics(model_dir, dataset):
    meta = json.loads((model_dir / "model.json").read_text())
    assert 0 < meta["threshold"] < 1 and meta["calibration"]["scale"] > 0
    assert meta["litert_max_abs_diff"] <= 1e-3
    assert {"balanced_accuracy", "ece", "min_source_accuracy"} <= set(meta["heldout"])
    for png in ("confusion_matrix", "roc", "reliability"):
        assert (model_dir / "evaluation" / f"heldout_{png}.png").stat().st_size > 1000
    assert meta["modalities"][:2] == ["xray", "ct"] and 0 < meta["modality_min_confidence"] < 1
    assert meta["training"]["data"] == [os.path.relpath(dataset)]
    modality = json.loads((model_dir / "evaluation" / "heldout_modality_metrics.json").read_text())
    assert modality["images"] == 16 and {r["modality"] for r in modality["per_modality"]} == {"xray", "ct"}
    assert (model_dir / "evaluation" / "heldout_modality_confusion_matrix.png").stat().st_size > 1000
    assert (model_dir / "evaluation" / "heldout_folder_curve.png").stat().st_size > 1000
    for engine in ("litert", "keras"):
        clf = Classifier.load(model_dir, engine=engine)
        out = clf.predict_all(np.zeros((3, clf.input_size, clf.input_size, 3), np.uint8))
        assert out.medical_probability.shape == (3,) and out.modality.shape == (3, len(meta["modalities"]))
        assert ((out.medical_probability >= 0) & (out.medical_probability <= 1)).all()
        assert np.allclose(out.modality.sum(axis=1), 1, atol=1e-4)


@pytest.mark.slow
def test_evaluate_reports_every_source(model_dir, dataset, tmp_path, capsys):
    summary = evaluate.main(["--model", str(model_dir), "--data", str(dataset), "--out", str(tmp_path),
                             "--prefix", "t_"])
    assert {r["source"] for r in summary["per_source"]} == {
        "medical-a", "medical-b", "non-medical-a", "non-medical-b"}
    assert summary["images"] == 32 and summary["roc_auc"] is not None
    assert summary["modality"]["images"] == 16 and (tmp_path / "t_modality_confusion_matrix.png").exists()
    saved = json.loads((tmp_path / "t_metrics.json").read_text())
    assert saved["confusion_matrix"] == summary["confusion_matrix"]
    report = (tmp_path / "t_report.md").read_text()
    assert "| medical | medical-a | 8 |" in report and "balanced accuracy" in report
    assert "ROC AUC" in capsys.readouterr().out


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model.json is missing"):
        Classifier.load(tmp_path / "nowhere")


@pytest.mark.slow
def test_corrupt_model_file_is_refused(model_dir, tmp_path):
    broken = corrupted_copy(model_dir, tmp_path / "broken", "model.tflite")
    with pytest.raises(ModelError, match="corrupt"):
        Classifier.load(broken, engine="litert")


@pytest.mark.slow
def test_mismatched_metadata_is_refused(model_dir, tmp_path):
    odd = tmp_path / "odd"
    shutil.copytree(model_dir, odd)
    meta = json.loads((odd / "model.json").read_text())
    meta["input_size"] = 96
    (odd / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="does not accept 96x96"):
        Classifier.load(odd, engine="keras")


@pytest.mark.slow
def test_wrong_batch_is_rejected(model_dir):
    clf = Classifier.load(model_dir)
    with pytest.raises(ValueError, match="uint8 batch"):
        clf.predict(np.zeros((1, 10, 10, 3), np.float32))
