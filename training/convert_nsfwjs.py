"""Convert the MobileNetV2 model shipped in the npm package ``nsfwjs`` into Keras 3 weights.

nsfwjs (https://www.npmjs.com/package/nsfwjs) bundles TensorFlow.js *layers* models. In the
published package (4.x) each model.json and weight shard is wrapped in a small UMD JavaScript
module (``dist/models/mobilenet_v2/model.min.js``, ``group1-shard1of1.min.js`` whose export is
the shard as base64); ``node`` unwraps them. A plain tfjs directory (model.json + group*-shard*
binaries) is read directly.

The nsfwjs MobileNetV2 is a Keras 2.2.4 ``keras.applications.MobileNetV2`` (alpha 1.0, 224 px)
with a 5-way head (AveragePooling 7x7 -> Flatten -> Dense 256 relu -> Dropout -> Dense 128 relu
-> Dropout -> Dense 5 softmax; classes Drawing, Hentai, Neutral, Porn, Sexy). Its weights are
uint8-quantised (per tensor: value = min + scale * q).

Preprocessing, from nsfwjs ``dist/esm/core.js`` (``NSFWJS.infer``): RGB pixels ``/ 255`` (range
[0, 1], no mean/std), bilinear resize (alignCorners) to 224 x 224. ``make_feature_extractor``
below puts that scaling inside the Keras model, so it takes uint8 RGB like the product model.

    npm pack nsfwjs && tar xzf nsfwjs-*.tgz -C ~/.cache/medcrawl/npm-nsfwjs   # -> .../package
    python -m training.convert_nsfwjs --package ~/.cache/medcrawl/npm-nsfwjs/package \
        --out runs/backbones/nsfwjs_mobilenet_v2.weights.h5 --check-image some.jpg
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
from pathlib import Path

import numpy as np

NSFW_CLASSES = ("Drawing", "Hentai", "Neutral", "Porn", "Sexy")
DEFAULT_PACKAGE = Path.home() / ".cache" / "medcrawl" / "npm-nsfwjs" / "package"
DEFAULT_OUT = Path("runs") / "backbones" / "nsfwjs_mobilenet_v2.weights.h5"
INPUT_SIZE = 224
FEATURES = 1280

_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "bool": np.bool_,
           "float16": np.float16, "uint16": np.uint16}
# tfjs weight names that Keras 3 calls differently (same layer, same tensor)
_ALIASES = {"depthwise_kernel": "kernel"}


# ----------------------------------------------------------------------------- reading tfjs

def read_tfjs_dir(directory: str | Path) -> tuple[dict, dict[str, bytes]]:
    """A tfjs directory: model.json and the shard files its weightsManifest names."""
    directory = Path(directory)
    model_json = json.loads((directory / "model.json").read_text())
    shards = {p: (directory / p).read_bytes()
              for group in model_json["weightsManifest"] for p in group["paths"]}
    return model_json, shards


_NODE_DUMP = r"""
const path = require("path");
const dir = process.argv[1];
const model = require(path.join(dir, "model.min.js"));
const shards = {};
for (const group of model.weightsManifest)
  for (const p of group.paths) shards[p] = require(path.join(dir, p + ".min.js"));
process.stdout.write(JSON.stringify({model, shards}));
"""


def read_nsfwjs_package(package: str | Path, name: str = "mobilenet_v2") -> tuple[dict, dict[str, bytes]]:
    """model.json and shards from an unpacked nsfwjs npm package (needs ``node``)."""
    directory = Path(package).expanduser() / "dist" / "models" / name
    if (directory / "model.json").exists():             # older packages ship plain tfjs files
        return read_tfjs_dir(directory)
    if not (directory / "model.min.js").exists():
        raise SystemExit(f"no nsfwjs model under {directory}")
    out = subprocess.run(["node", "-e", _NODE_DUMP, str(directory)], check=True,
                         capture_output=True, text=True).stdout
    dumped = json.loads(out)
    return dumped["model"], {p: base64.b64decode(s) for p, s in dumped["shards"].items()}


def decode_weights(model_json: dict, shards: dict[str, bytes]) -> dict[str, np.ndarray]:
    """weightsManifest -> {name: float32/int32 array}; handles uint8/uint16/float16 quantisation."""
    weights: dict[str, np.ndarray] = {}
    for group in model_json["weightsManifest"]:
        buf = b"".join(shards[p] for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = tuple(spec["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            quant = spec.get("quantization")
            stored = np.dtype(_DTYPES[quant["dtype"] if quant else spec["dtype"]])
            nbytes = count * stored.itemsize
            if offset + nbytes > len(buf):
                raise ValueError(f"weight {spec['name']} runs past the end of its shards")
            raw = np.frombuffer(buf, stored, count, offset)
            offset += nbytes
            if quant and quant["dtype"] in ("uint8", "uint16"):
                value = quant["min"] + quant["scale"] * raw.astype(np.float64)
            else:
                value = raw
            value = value.astype(_DTYPES[spec["dtype"]])
            if spec["name"] in weights:
                raise ValueError(f"weight {spec['name']} appears twice")
            weights[spec["name"]] = value.reshape(shape)
        if offset != len(buf):
            raise ValueError(f"{len(buf) - offset} unread bytes in shard group {group['paths']}")
    return weights


# ----------------------------------------------------------------------------- assigning

def assign_weights(model, weights: dict[str, np.ndarray], allow_unused: tuple[str, ...] = ()) -> dict:
    """Copy tfjs weights into a Keras model matched by ``layer/weight`` name, strictly.

    Every Keras variable must find a tfjs tensor of the same shape, and every tfjs tensor must be
    used unless its layer name starts with one of ``allow_unused``. Returns a small report.
    """
    remaining = dict(weights)
    assigned = 0
    for layer in model.layers:
        values = []
        for var in layer.weights:
            short = var.path.rsplit("/", 1)[-1]
            candidates = [f"{layer.name}/{short}"] + [f"{layer.name}/{tf_name}"
                                                      for tf_name, k in _ALIASES.items() if k == short]
            key = next((c for c in candidates if c in remaining), None)
            if key is None:
                raise KeyError(f"no tfjs weight for {var.path} (tried {candidates})")
            value = remaining.pop(key)
            if tuple(value.shape) != tuple(var.shape):
                raise ValueError(f"{key}: tfjs shape {value.shape} != keras {tuple(var.shape)}")
            values.append(value)
        if values:
            layer.set_weights(values)
            assigned += len(values)
    unused = [k for k in remaining if not k.startswith(allow_unused)] if allow_unused else list(remaining)
    if unused:
        raise ValueError(f"{len(unused)} tfjs weights not used: {unused[:5]}")
    return {"assigned": assigned, "tfjs_weights": len(weights), "skipped": sorted(remaining)}


# ----------------------------------------------------------------------------- the model

def _topology_layers(model_json: dict) -> list[dict]:
    topology = model_json["modelTopology"]
    config = topology.get("model_config", topology)["config"]
    return config["layers"] if isinstance(config, dict) else config


def _head_layer(spec: dict):
    from keras import layers
    cls, cfg = spec["class_name"], spec["config"]
    if cls == "AveragePooling2D":
        return layers.AveragePooling2D(tuple(cfg["pool_size"]), tuple(cfg["strides"]), cfg["padding"],
                                       name=cfg["name"])
    if cls == "GlobalAveragePooling2D":
        return layers.GlobalAveragePooling2D(name=cfg["name"])
    if cls == "Flatten":
        return layers.Flatten(name=cfg["name"])
    if cls == "Dense":
        return layers.Dense(cfg["units"], activation=cfg["activation"], use_bias=cfg["use_bias"],
                            name=cfg["name"])
    if cls == "Dropout":
        return layers.Dropout(cfg["rate"], name=cfg["name"])
    raise ValueError(f"unsupported head layer {cls} ({cfg.get('name')})")


def build_classifier(model_json: dict, input_size: int = INPUT_SIZE):
    """Keras 3 MobileNetV2 trunk + the head described by the topology (float input in [0, 1])."""
    import keras
    specs = _topology_layers(model_json)
    names = [s["name"] for s in specs]
    if "out_relu" not in names:
        raise ValueError("topology has no out_relu layer: not a keras.applications MobileNetV2")
    conv1 = next(s for s in specs if s["name"] == "Conv1")
    alpha = conv1["config"]["filters"] / 32
    trunk = keras.applications.MobileNetV2(input_shape=(input_size, input_size, 3), alpha=alpha,
                                           include_top=False, weights=None)
    trunk_names = {layer.name for layer in trunk.layers}
    extra = [n for n in names[:names.index("out_relu") + 1]
             if n not in trunk_names and not n.startswith("input") and n != "Conv1_pad"]
    if extra:       # Keras 2.2.4's Conv1_pad + 'valid' == Keras 3's Conv1 'same' at even sizes
        raise ValueError(f"topology layers missing from keras MobileNetV2: {extra[:5]}")
    x = trunk.output
    for spec in specs[names.index("out_relu") + 1:]:
        x = _head_layer(spec)(x)
    return keras.Model(trunk.input, x, name="nsfwjs_mobilenet_v2")


def convert(model_json: dict, shards: dict[str, bytes]):
    """(classifier with nsfwjs weights, assignment report)."""
    model = build_classifier(model_json)
    report = assign_weights(model, decode_weights(model_json, shards))
    return model, report


def load_classifier(weights: str | Path = DEFAULT_OUT, package: str | Path = DEFAULT_PACKAGE):
    """The converted 224 px classifier (float [0, 1] input -> 5 softmax probabilities)."""
    if not Path(package).expanduser().is_dir():
        raise SystemExit(f"nsfwjs package not found at {package} (its topology is needed)")
    model = build_classifier(read_nsfwjs_package(package)[0])
    model.load_weights(weights)
    return model


def make_feature_extractor(input_size: int = INPUT_SIZE, weights: str | Path = DEFAULT_OUT,
                           package: str | Path = DEFAULT_PACKAGE):
    """uint8 RGB (N, S, S, 3) -> 1280-d global-average-pooled nsfwjs MobileNetV2 features."""
    import keras
    from keras import layers
    full = load_classifier(weights, package)
    trunk = keras.applications.MobileNetV2(input_shape=(input_size, input_size, 3),
                                           alpha=full.get_layer("Conv1").filters / 32,
                                           include_top=False, weights=None, pooling="avg")
    for layer in trunk.layers:
        if layer.weights:
            layer.set_weights(full.get_layer(layer.name).get_weights())
    trunk.trainable = False
    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name="image")
    x = layers.Rescaling(1 / 255.0, name="to_unit_range")(inputs)      # nsfwjs: pixels / 255
    return keras.Model(inputs, trunk(x, training=False), name="nsfwjs_features")


# ----------------------------------------------------------------------------- reference check

_NODE_REFERENCE = r"""
const fs = require("fs"), path = require("path");
const [prefix, modelFile, inputFile, n, size] = process.argv.slice(1);
const tf = require(path.join(prefix, "node_modules", "@tensorflow", "tfjs"));
const {model, shards} = JSON.parse(fs.readFileSync(modelFile, "utf8"));
const specs = [], parts = [];
for (const g of model.weightsManifest) {
  specs.push(...g.weights);
  for (const p of g.paths) parts.push(Buffer.from(shards[p], "base64"));
}
const all = Buffer.concat(parts);
const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.length);
(async () => {
  await tf.setBackend("cpu");
  const m = await tf.loadLayersModel(tf.io.fromMemory({modelTopology: model.modelTopology,
                                                      weightSpecs: specs, weightData}));
  const raw = fs.readFileSync(inputFile);
  const x = tf.tensor4d(new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4),
                        [+n, +size, +size, 3]);
  const probs = m.predict(x);
  const trunk = tf.model({inputs: m.inputs, outputs: m.getLayer("out_relu").output});
  const feats = trunk.predict(x).mean([1, 2]);
  process.stdout.write(JSON.stringify({probs: await probs.array(), features: await feats.array()}));
})();
"""


def tfjs_reference(model_json: dict, shards: dict[str, bytes], batch: np.ndarray,
                   tfjs_prefix: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Run the original model in TensorFlow.js (node, CPU backend) on a float batch in [0, 1].

    ``tfjs_prefix`` is an ``npm install --prefix DIR @tensorflow/tfjs`` folder. Returns
    (softmax probabilities, global-average-pooled out_relu features).
    """
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        model_file, input_file = Path(tmp) / "model.json", Path(tmp) / "x.f32"
        model_file.write_text(json.dumps({"model": model_json, "shards": {
            k: base64.b64encode(v).decode() for k, v in shards.items()}}))
        input_file.write_bytes(np.ascontiguousarray(batch, np.float32).tobytes())
        out = subprocess.run(["node", "-e", _NODE_REFERENCE, str(Path(tfjs_prefix).expanduser()),
                              str(model_file), str(input_file), str(len(batch)), str(batch.shape[1])],
                             check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    return np.asarray(result["probs"], np.float32), np.asarray(result["features"], np.float32)


# ----------------------------------------------------------------------------- CLI

def _load_image(path: str, size: int) -> np.ndarray:
    from medcrawl.model import images
    return images.prepare(Path(path).read_bytes(), size)[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--package", default=str(DEFAULT_PACKAGE), help="unpacked nsfwjs npm package")
    src.add_argument("--tfjs", help="a plain tfjs layers directory (model.json + shards) instead")
    ap.add_argument("--model", default="mobilenet_v2", help="model folder inside the package")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output .weights.h5 (not committed)")
    ap.add_argument("--check-image", action="append", default=[], help="print nsfwjs classes for it")
    ap.add_argument("--tfjs-reference", metavar="PREFIX",
                    help="compare with the original model run in TensorFlow.js on the check images "
                         "(PREFIX: an `npm install --prefix PREFIX @tensorflow/tfjs` folder)")
    args = ap.parse_args(argv)

    model_json, shards = (read_tfjs_dir(args.tfjs) if args.tfjs
                          else read_nsfwjs_package(args.package, args.model))
    model, report = convert(model_json, shards)
    print(f"assigned {report['assigned']} of {report['tfjs_weights']} tfjs tensors "
          f"(unused: {len(report['skipped'])}); {model.count_params():,} parameters")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(out)
    print(f"wrote {out}")
    if args.check_image:
        batch = np.stack([_load_image(p, INPUT_SIZE) for p in args.check_image]).astype(np.float32) / 255.0
        probs = model.predict(batch, verbose=0)
        for path, p in zip(args.check_image, probs):
            top = ", ".join(f"{NSFW_CLASSES[i]} {p[i]:.2f}" for i in np.argsort(-p)[:3])
            print(f"  sum={p.sum():.4f}  {top}  {path}")
        if args.tfjs_reference:
            import keras
            ref_probs, ref_feats = tfjs_reference(model_json, shards, batch, args.tfjs_reference)
            trunk = keras.Model(model.input, model.get_layer("out_relu").output)
            feats = trunk.predict(batch, verbose=0).mean(axis=(1, 2))
            print(f"tfjs reference: max |prob diff| {np.abs(ref_probs - probs).max():.2e}, "
                  f"max |feature diff| {np.abs(ref_feats - feats).max():.2e} "
                  f"(feature scale {np.abs(ref_feats).max():.2f}), same top class "
                  f"{int((ref_probs.argmax(1) == probs.argmax(1)).sum())}/{len(batch)}")


if __name__ == "__main__":
    main()
