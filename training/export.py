"""Save a trained model as the directory the product loads: model.keras, model.tflite, model.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medcrawl.model.classifier import file_sha256


def export_litert(model, path: Path) -> None:
    """Convert the Keras model to a LiteRT flatbuffer (float32, dynamic batch)."""
    import tensorflow as tf
    size = model.input_shape[1]
    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
    path.write_bytes(converter.convert())


def keras_outputs(model, batch: np.ndarray) -> list[np.ndarray]:
    """The Keras model's outputs, ordered by width (medical probability (N, 1) first)."""
    out = model(batch, training=False)
    out = list(out.values()) if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else [out]
    return sorted((np.asarray(o, np.float32) for o in out), key=lambda o: o.shape[-1])


def litert_outputs(path: Path, batch: np.ndarray) -> list[np.ndarray]:
    """The LiteRT model's outputs, identified by shape as the product does (ordered by width)."""
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=str(path))
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], batch.shape)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], batch)
    interp.invoke()
    outs = [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]
    return sorted(outs, key=lambda o: o.shape[-1])


def save_model_dir(model, out: Path, meta: dict, probe: np.ndarray) -> dict:
    """Write the model files and metadata, then check both engines agree within 1e-3 on ``probe``
    (every output; the Keras model is the saved file reloaded)."""
    import keras
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    export_litert(model, out / "model.tflite")
    files = {"keras": "model.keras", "litert": "model.tflite"}
    meta = {**meta, "input_size": int(model.input_shape[1]), "files": files,
            "sha256": {name: file_sha256(out / name) for name in files.values()}}
    reloaded = keras.saving.load_model(out / "model.keras", compile=False)
    expected, got = keras_outputs(reloaded, probe), litert_outputs(out / "model.tflite", probe)
    if [e.shape for e in expected] != [g.shape for g in got]:
        raise SystemExit(f"LiteRT outputs {[g.shape for g in got]} differ from Keras {[e.shape for e in expected]}")
    diff = max(float(np.abs(e - g).max()) for e, g in zip(expected, got))
    if diff > 1e-3:
        raise SystemExit(f"LiteRT export differs from Keras by {diff:.2e} (> 1e-3)")
    meta["litert_max_abs_diff"] = diff
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
