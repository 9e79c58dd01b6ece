"""training.convert_nsfwjs on a tiny synthetic TensorFlow.js layers model written here."""

import json

import keras
import numpy as np
import pytest
from keras import layers

from training import convert_nsfwjs


def tiny_model(seed=None):
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="conv")(inputs)
    x = layers.DepthwiseConv2D(3, name="dw")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(2, name="dense")(x))


def tfjs_names(layer_name, var_path):
    short = var_path.rsplit("/", 1)[-1]
    if layer_name == "dw" and short == "kernel":      # tfjs / Keras 2 spelling
        short = "depthwise_kernel"
    return f"{layer_name}/{short}"


def write_tfjs(directory, model, quantize=("conv/kernel",)):
    """model.json + two shards (one weight uint8-quantised), as tensorflowjs_converter writes."""
    specs, blobs, expected = [], [], {}
    for layer in model.layers:
        for var in layer.weights:
            name = tfjs_names(layer.name, var.path)
            value = np.asarray(var.numpy(), np.float32)
            spec = {"name": name, "shape": list(value.shape), "dtype": "float32"}
            if name in quantize:
                lo, hi = float(value.min()), float(value.max())
                scale = (hi - lo) / 255
                q = np.round((value - lo) / scale).astype(np.uint8)
                spec["quantization"] = {"min": lo, "scale": scale, "dtype": "uint8"}
                blobs.append(q.tobytes())
                value = (lo + scale * q.astype(np.float64)).astype(np.float32)
            else:
                blobs.append(value.tobytes())
            specs.append(spec)
            expected[name] = value
    data = b"".join(blobs)
    half = len(data) // 2
    (directory / "group1-shard1of2.bin").write_bytes(data[:half])
    (directory / "group1-shard2of2.bin").write_bytes(data[half:])
    (directory / "model.json").write_text(json.dumps({
        "format": "layers-model", "modelTopology": {},
        "weightsManifest": [{"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"],
                             "weights": specs}]}))
    return expected


def test_weights_round_trip(tmp_path):
    source = tiny_model(seed=1)
    expected = write_tfjs(tmp_path, source)
    model_json, shards = convert_nsfwjs.read_tfjs_dir(tmp_path)
    decoded = convert_nsfwjs.decode_weights(model_json, shards)
    assert decoded.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_allclose(decoded[name], value, rtol=0, atol=1e-6)

    target = tiny_model(seed=2)
    report = convert_nsfwjs.assign_weights(target, decoded)
    assert report["assigned"] == len(expected) and not report["skipped"]
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype(np.float32)
    unquantised = np.abs(source.predict(x, verbose=0) - target.predict(x, verbose=0)).max()
    assert unquantised < 0.05                       # only conv/kernel lost precision (uint8)
    for layer in target.layers:
        for var in layer.weights:
            np.testing.assert_allclose(var.numpy(), expected[tfjs_names(layer.name, var.path)], atol=1e-6)


def test_mismatches_are_errors(tmp_path):
    expected = write_tfjs(tmp_path, tiny_model(seed=1))
    decoded = convert_nsfwjs.decode_weights(*convert_nsfwjs.read_tfjs_dir(tmp_path))
    extra = dict(decoded, **{"head/kernel": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match="not used"):
        convert_nsfwjs.assign_weights(tiny_model(), extra)
    assert convert_nsfwjs.assign_weights(tiny_model(), extra, allow_unused=("head",))["skipped"] == ["head/kernel"]
    missing = {k: v for k, v in decoded.items() if k != "bn/gamma"}
    with pytest.raises(KeyError, match="bn"):
        convert_nsfwjs.assign_weights(tiny_model(), missing)
    wrong = dict(decoded, **{"dense/bias": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="shape"):
        convert_nsfwjs.assign_weights(tiny_model(), wrong)
    assert len(expected) == len(decoded)


def test_truncated_shard_is_an_error(tmp_path):
    write_tfjs(tmp_path, tiny_model(seed=1))
    model_json, shards = convert_nsfwjs.read_tfjs_dir(tmp_path)
    shards["group1-shard2of2.bin"] = shards["group1-shard2of2.bin"][:-4]
    with pytest.raises(ValueError, match="past the end"):
        convert_nsfwjs.decode_weights(model_json, shards)
