"""A real two-output model (medical probability + modality) for tests, until the default model has one.

Built with training.model's builders: the default model's backbone and medical head, a low
threshold (so that a test site has many medical rows: clear photos and portraits stay
non-medical), plus a modality head with seeded random weights (its classes are arbitrary but
fixed), saved with training.export like a trained model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from medcrawl.config import model_location
from medcrawl.labels import MODALITIES
from medcrawl.model.classifier import Classifier

MIN_CONFIDENCE = 0.2          # the fixture's "other" threshold
THRESHOLD = 0.05              # low, so that many of a test site's images count as medical


def modality_model_dir(workdir: Path) -> Path:
    """The default model when it has a modality head, else a two-output model built in ``workdir``."""
    default = Path(model_location()[0])
    if Classifier.load(default, engine="litert").modalities:
        return default
    return build_two_output_model(default, workdir / "two-output")


def build_two_output_model(base_dir: Path, out: Path) -> Path:
    """The one-output model in ``base_dir`` plus a seeded modality head, saved to ``out``."""
    import keras
    from training.export import save_model_dir
    from training.model import make_head, make_model

    meta = json.loads((base_dir / "model.json").read_text())
    base = keras.saving.load_model(base_dir / "model.keras", compile=False)
    head = make_head()
    head.set_weights(base.get_layer("head").get_weights())
    keras.utils.set_random_seed(11)
    modality_head = make_head(outputs=len(MODALITIES))
    calibration = meta["calibration"]
    model = make_model(meta["input_size"], head, calibration["scale"], calibration["bias"],
                       modality_head=modality_head)
    keep = {k: meta[k] for k in ("version", "engine", "labels", "calibration")}
    fixture_meta = {**keep, "name": "fixture-two-output", "threshold": THRESHOLD,
                    "modalities": list(MODALITIES), "modality_min_confidence": MIN_CONFIDENCE}
    size = meta["input_size"]
    probe = np.random.default_rng(0).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    save_model_dir(model, out, fixture_meta, probe)
    return out


def build_one_output_model(out: Path) -> Path:
    """A one-output model (like medcrawl-v1): random backbone at 64 px, saved like a trained one."""
    import keras
    from training.export import save_model_dir
    from training.model import make_head, make_model

    keras.utils.set_random_seed(3)
    probe = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    save_model_dir(make_model(64, make_head(), weights=None), out,
                   {"name": "one-output", "version": "1", "engine": "litert", "threshold": 0.5}, probe)
    return out


def corrupted_copy(model_dir: Path, dest: Path, filename: str) -> Path:
    """A copy of a model directory with one byte of one of its files flipped."""
    shutil.copytree(model_dir, dest)
    blob = bytearray((dest / filename).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (dest / filename).write_bytes(bytes(blob))
    return dest
