"""The model API with a two-output model (medical probability + modality) and a one-output model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from medcrawl.labels import MODALITIES, OTHER_MODALITY
from medcrawl.config import DEFAULT_MODEL_DIR, LoadedModel
from medcrawl.model.classifier import Classifier, ModelError
from tests.support.modality_model import corrupted_copy
from tests.support.oneoff_assets import mri_png, photo_jpeg


@pytest.fixture(scope="module")
def engines(modality_model) -> dict[str, Classifier]:
    return {e: Classifier.load(modality_model, engine=e) for e in ("keras", "litert")}


def batch(clf: Classifier, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(5)
    arrays = [clf.prepare(data)[1] for data in (mri_png(), photo_jpeg())]
    arrays += [rng.integers(0, 256, (clf.input_size,) * 2 + (3,), dtype=np.uint8) for _ in range(n - 2)]
    return np.stack(arrays)


def test_two_outputs_from_both_engines(engines):
    keras_out, lite_out = (engines[e].predict_all(batch(engines[e])) for e in ("keras", "litert"))
    k = len(engines["keras"].modalities)
    assert set(engines["keras"].modalities) <= set(MODALITIES) and k >= 2
    for out in (keras_out, lite_out):
        assert out.medical_probability.shape == (6,) and out.modality.shape == (6, k)
        assert np.allclose(out.modality.sum(axis=1), 1.0, atol=1e-4)
    assert np.abs(keras_out.modality - lite_out.modality).max() < 1e-3
    assert np.abs(keras_out.medical_probability - lite_out.medical_probability).max() < 1e-3
    assert np.array_equal(engines["litert"].predict(batch(engines["litert"])), lite_out.medical_probability)


def test_verdicts_carry_the_modality_of_medical_images_only(engines):
    clf = engines["litert"]
    arrays = list(batch(clf))
    out = clf.predict_all(np.stack(arrays))
    verdicts = clf.classify_arrays(arrays)
    assert verdicts[0].label == "medical" and verdicts[1].label == "non-medical"   # MRI, portrait
    for v, scores in zip(verdicts, out.modality):
        if v.label == "medical":
            best = int(np.argmax(scores))
            assert v.modality_confidence == pytest.approx(float(scores[best]))
            expected = clf.modalities[best] if scores[best] >= clf.modality_min_confidence else OTHER_MODALITY
            assert v.modality == expected
        else:
            assert (v.modality, v.modality_confidence) == ("", None)


def test_other_below_the_minimum_confidence(engines):
    clf = engines["keras"]
    k = len(clf.modalities)
    confident = np.full(k, 0.01, np.float32)
    confident[1] = 1 - 0.01 * (k - 1)
    assert clf.verdict(0.99, confident).modality == clf.modalities[1]
    flat = np.full(k, 1 / k, np.float32)
    if clf.modality_min_confidence > 1 / k:
        assert clf.verdict(0.99, flat).modality == OTHER_MODALITY
        assert clf.verdict(0.99, flat).modality_confidence == pytest.approx(1 / k)
    assert clf.verdict(0.0, confident).modality == ""


def test_one_output_model_has_no_modality(one_output_model):
    for engine in ("keras", "litert"):
        clf = Classifier.load(one_output_model, engine=engine)
        assert clf.modalities == ()
        verdicts = clf.classify_arrays(list(batch(clf, 4)))
        assert len(verdicts) == 4 and all((v.modality, v.modality_confidence) == ("", None) for v in verdicts)
        assert clf.predict_all(batch(clf, 4)).modality is None


def test_the_model_is_loaded_once_with_its_two_thresholds(modality_model, tmp_path):
    named = edited(modality_model, tmp_path / "named", dataset_min_confidence=0.9, threshold=0.4)
    model = LoadedModel.load(named)
    assert (model.decision_threshold, model.dataset_min_confidence) == (0.4, 0.9)
    assert LoadedModel.load(named).classifier is model.classifier                   # once per process
    assert LoadedModel.load(named, dataset_min_confidence=0.5).dataset_min_confidence == 0.5   # the setting
    unnamed = LoadedModel.load(edited(modality_model, tmp_path / "unnamed", dataset_min_confidence=None))
    assert unnamed.dataset_min_confidence is None
    with pytest.raises(ModelError, match="MEDCRAWL_DATASET_MIN_CONFIDENCE"):
        unnamed.require_dataset_min_confidence()


def edited(src, dest, **changes):
    shutil.copytree(src, dest)
    meta = json.loads((dest / "model.json").read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    (dest / "model.json").write_text(json.dumps(meta))
    return dest


@pytest.mark.parametrize("engine", ["keras", "litert"])
def test_outputs_must_match_model_json(one_output_model, modality_model, tmp_path, engine):
    claims = edited(one_output_model, tmp_path / "claims", modalities=["ct", "mri"], modality_min_confidence=0.5)
    with pytest.raises(ModelError, match="lists 2 modalities"):
        Classifier.load(claims, engine=engine)
    silent = edited(modality_model, tmp_path / "silent", modalities=None)
    with pytest.raises(ModelError, match="lists no modalities"):
        Classifier.load(silent, engine=engine)


def test_modalities_in_model_json_are_checked(modality_model, tmp_path):
    unknown = edited(modality_model, tmp_path / "unknown", modalities=["ct", "x-ray"])
    with pytest.raises(ModelError, match="must list two or more distinct names"):
        Classifier.load(unknown)
    no_minimum = edited(modality_model, tmp_path / "no-minimum", modality_min_confidence=None)
    with pytest.raises(ModelError, match="modality_min_confidence"):
        Classifier.load(no_minimum)


def test_every_model_file_is_verified(modality_model, tmp_path):
    broken = corrupted_copy(modality_model, tmp_path / "broken", "model.keras")
    with pytest.raises(ModelError, match="model.keras is corrupt"):
        Classifier.load(broken, engine="litert")


def test_labelling_fills_the_modality_and_keeps_a_tag(engines):
    from medcrawl.items import ImageItem
    from medcrawl.model.labelling import label_items
    clf = engines["litert"]
    mri, photo = ImageItem(body=mri_png()), ImageItem(body=photo_jpeg())
    label_items(clf, [mri, photo], min_size=0)
    expected = clf.classify_arrays([clf.prepare(mri_png())[1]])[0]
    assert (mri.label, mri.modality, mri.model_modality) == ("medical", expected.modality, "")
    assert mri.modality_confidence == pytest.approx(expected.modality_confidence, abs=1e-6)
    assert (photo.label, photo.modality, photo.modality_confidence) == ("non-medical", "", None)
    other = next(m for m in clf.modalities if m != expected.modality)
    same, differs = (ImageItem(body=mri_png(), modality=m) for m in (expected.modality, other))
    label_items(clf, [same, differs], min_size=0)         # a modality from a DICOM tag stays
    assert (same.modality, same.model_modality, same.modality_confidence) == (expected.modality, "", 1.0)
    assert (differs.modality, differs.model_modality) == (other, expected.modality)


def test_native_info_lines_are_dropped_and_the_rest_passed_on(capfd):
    from medcrawl.model.quiet import native_info_silenced
    with native_info_silenced():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nWARNING: kept\n")
    assert capfd.readouterr().err == "WARNING: kept\n"



def grey(data: bytes) -> bytes:
    import io
    from PIL import Image
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("L").save(out, "PNG")
    return out.getvalue()


def shipped_with(folder, refine) -> Path:
    """The shipped model's files linked into ``folder``, its model.json's ``refine`` set to ``refine``."""
    folder.mkdir()
    for entry in DEFAULT_MODEL_DIR.iterdir():
        if entry.name != "model.json":
            (folder / entry.name).symlink_to(entry)
    meta = json.loads((DEFAULT_MODEL_DIR / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps(dict(meta, refine=refine)))
    return folder


def cascade_copy(tmp_path, band) -> Classifier:
    """The shipped model and its refine model, the band set to ``band``."""
    refine = json.loads((DEFAULT_MODEL_DIR / "model.json").read_text())["refine"]
    return Classifier.load(shipped_with(tmp_path / f"cascade-{band[0]}-{band[1]}", dict(refine, band=list(band))))


def test_the_cascade_refines_exactly_the_images_inside_its_band(tmp_path):
    from medcrawl.items import ImageItem
    from medcrawl.model.labelling import label_items
    bodies = [mri_png(), photo_jpeg(), grey(photo_jpeg())]
    everything, nothing = cascade_copy(tmp_path, (1e-6, 1 - 1e-6)), cascade_copy(tmp_path, (0.5, 0.5 + 1e-9))
    refiner = everything.refiner
    assert refiner is not None and refiner.input_size > everything.input_size
    first = everything.predict_all(np.stack([everything.prepare(b)[1] for b in bodies]))
    second = refiner.predict_all(np.stack([refiner.prepare(b)[1] for b in bodies]))
    mean = [everything.verdict(p, m) for p, m in zip((first.medical_probability + second.medical_probability) / 2,
                                                     (first.modality + second.modality) / 2)]
    alone = [everything.verdict(p, m) for p, m in zip(first.medical_probability, first.modality)]
    for clf, expected in ((everything, mean), (nothing, alone)):
        items = [ImageItem(body=b) for b in bodies]
        label_items(clf, items, min_size=0)
        assert [i.medical_probability for i in items] == pytest.approx(
            [v.medical_probability for v in expected], abs=1e-5)
        assert [(i.label, i.modality) for i in items] == [(v.label, v.modality) for v in expected]
    assert [v.medical_probability for v in everything.classify_bytes(bodies)] == pytest.approx(
        [v.medical_probability for v in mean], abs=1e-6)
    assert np.abs(first.medical_probability - second.medical_probability).max() > 1e-3


@pytest.mark.parametrize("refine", [{"model": "refine", "band": [0.8, 0.2]}, {"band": [0.2, 0.8]},
                                    {"model": "refine", "band": 0.5}, "refine"])
def test_a_bad_refine_entry_is_refused(tmp_path, refine):
    with pytest.raises(ModelError, match="refine"):
        Classifier.load(shipped_with(tmp_path / "bad", refine))
