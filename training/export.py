"""Save a trained model as the directory the product loads: model.keras, model.tflite, model.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medcrawl.model.classifier import Classifier, file_sha256


def export_litert(model, path: Path) -> None:
    """Convert the Keras model to a LiteRT flatbuffer (float32, dynamic batch)."""
    import tensorflow as tf
    size = model.input_shape[1]
    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
    path.write_bytes(converter.convert())


def save_model_dir(model, out: Path, meta: dict, probe: np.ndarray) -> dict:
    """Write the model files and metadata, then check both engines agree within 1e-3 on ``probe``."""
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    export_litert(model, out / "model.tflite")
    files = {"keras": "model.keras", "litert": "model.tflite"}
    meta = {**meta, "input_size": int(model.input_shape[1]), "files": files,
            "sha256": {name: file_sha256(out / name) for name in files.values()}}
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    keras_p = Classifier.load(out, engine="keras").predict(probe)
    lite_p = Classifier.load(out, engine="litert").predict(probe)
    diff = float(np.abs(keras_p - lite_p).max())
    if diff > 1e-3:
        raise SystemExit(f"LiteRT export differs from Keras by {diff:.2e} (> 1e-3)")
    meta["litert_max_abs_diff"] = diff
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
