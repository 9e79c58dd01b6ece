"""The model API: load a trained model directory once, turn images into medical probabilities."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medcrawl.model import images

MEDICAL, NON_MEDICAL = "medical", "non-medical"
ENGINES = ("litert", "keras")


class ModelError(RuntimeError):
    """The model directory is missing, corrupt or does not match its metadata."""


@dataclass(frozen=True)
class Prediction:
    """One image's verdict."""

    medical_probability: float
    label: str
    confidence: float


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Classifier:
    """A loaded model: ``predict`` takes uint8 RGB batches of shape (N, S, S, 3)."""

    def __init__(self, model_dir: Path, meta: dict, runner, engine: str):
        self.model_dir, self.meta, self._run, self.engine = model_dir, meta, runner, engine
        self.name = f"{meta['name']}@{meta['version']}"
        self.input_size = int(meta["input_size"])
        self.threshold = float(meta["threshold"])
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: str | os.PathLike, engine: str | None = None) -> "Classifier":
        """Load and verify a model directory (model.json, model.keras, model.tflite).

        ``engine`` None: the model's own. Where the model is by default: ``config.model_location``.
        """
        model_dir = Path(model_dir)
        meta = read_metadata(model_dir)
        engine = engine or meta.get("engine", "keras")
        if engine not in ENGINES:
            raise ModelError(f"unknown model engine {engine!r}; choose one of {', '.join(ENGINES)}")
        path = model_dir / meta["files"][engine]
        verify_file(path, meta["sha256"].get(meta["files"][engine]))
        runner = _load_litert(path) if engine == "litert" else _load_keras(path)
        clf = cls(model_dir, meta, runner, engine)
        clf._check_shape()
        return clf

    def _check_shape(self) -> None:
        probe = np.zeros((1, self.input_size, self.input_size, 3), np.uint8)
        try:
            out = self.predict(probe)
        except Exception as exc:  # noqa: BLE001 - any failure here means a mismatched model
            raise ModelError(f"model in {self.model_dir} does not accept "
                             f"{self.input_size}x{self.input_size} RGB input: {exc}") from exc
        if out.shape != (1,):
            raise ModelError(f"model in {self.model_dir} returns shape {out.shape}, expected one "
                             "medical probability per image")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Medical probabilities (float32, shape (N,)) for a uint8 batch (N, S, S, 3)."""
        batch = np.asarray(batch)
        expected = (self.input_size, self.input_size, 3)
        if batch.ndim != 4 or batch.shape[1:] != expected or batch.dtype != np.uint8:
            raise ValueError(f"expected uint8 batch of shape (N, {expected[0]}, {expected[1]}, 3), "
                             f"got {batch.dtype} {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0,), np.float32)
        with self._lock:
            return np.asarray(self._run(batch), np.float32).reshape(-1)

    def verdict(self, probability: float) -> Prediction:
        """Label and confidence for one probability at the model's threshold."""
        medical = probability >= self.threshold
        confidence = probability if medical else 1.0 - probability
        return Prediction(float(probability), MEDICAL if medical else NON_MEDICAL, float(confidence))

    def prepare(self, data: bytes, min_size: int = 0,
                max_pixels: int | None = images.DEFAULT_MAX_PIXELS):
        """Bytes -> (ImageInfo, model input) at this model's size; raises images.ImageError."""
        return images.prepare(data, self.input_size, min_size=min_size, max_pixels=max_pixels)

    def classify_arrays(self, arrays: list[np.ndarray]) -> list[Prediction]:
        """Verdicts for already prepared inputs."""
        if not arrays:
            return []
        return [self.verdict(p) for p in self.predict(np.stack(arrays))]


@functools.lru_cache(maxsize=4)
def load_shared(model_dir: str | os.PathLike, engine: str | None = None) -> Classifier:
    """The model loaded once per process (per directory and engine); raises ModelError."""
    return Classifier.load(model_dir, engine)


def read_metadata(model_dir: Path) -> dict:
    """Read and check model.json, raising ModelError with the reason."""
    meta_path = model_dir / "model.json"
    if not meta_path.is_file():
        raise ModelError(f"no model at {model_dir}: {meta_path.name} is missing "
                         "(train one with `python -m training.train`, or set MEDCRAWL_MODEL)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{meta_path} is not valid JSON: {exc}") from exc
    missing = {"name", "version", "input_size", "threshold", "files", "sha256"} - set(meta)
    if missing:
        raise ModelError(f"{meta_path} lacks {', '.join(sorted(missing))}")
    return meta


def verify_file(path: Path, expected_sha256: str | None) -> None:
    """Raise ModelError unless the file exists and matches its recorded sha256."""
    if not path.is_file():
        raise ModelError(f"model file {path} is missing")
    if expected_sha256 and file_sha256(path) != expected_sha256:
        raise ModelError(f"model file {path} is corrupt: its sha256 does not match model.json")


def _load_keras(path: Path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - keras raises many types for a bad file
        raise ModelError(f"cannot load Keras model {path}: {exc}") from exc
    size = model.input_shape[1]
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                     input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)])
    return lambda batch: fn(batch).numpy()


def _load_litert(path: Path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ModelError("engine 'litert' needs the ai-edge-litert package") from exc
    try:
        interp = Interpreter(model_path=str(path), num_threads=os.cpu_count() or 1)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot load LiteRT model {path}: {exc}") from exc
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    shape = [0]

    def run(batch: np.ndarray) -> np.ndarray:
        if shape[0] != len(batch):
            interp.resize_tensor_input(inp, batch.shape)
            interp.allocate_tensors()
            shape[0] = len(batch)
        interp.set_tensor(inp, batch)
        interp.invoke()
        return interp.get_tensor(out).copy()
    return run
