"""The model API: load a trained model directory once, turn images into medical probabilities
and, for a model with a modality head, the kind of medical image."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from medcrawl.labels import MEDICAL, MODALITIES, NON_MEDICAL, OTHER_MODALITY
from medcrawl.model import images
from medcrawl.model.quiet import native_info_silenced

ENGINES = ("litert", "keras")
PROBABILITY_OUTPUT, MODALITY_OUTPUT = "medical_probability", "modality"    # Keras output names


class ModelError(RuntimeError):
    """The model directory is missing, corrupt or does not match its metadata."""


@dataclass(frozen=True)
class Prediction:
    """One image's verdict."""

    medical_probability: float
    label: str
    confidence: float
    modality: str = ""                        # medical: one of the model's modalities or "other"
    modality_confidence: float | None = None  # the top modality's probability (medical only)


class Outputs(NamedTuple):
    """A batch's model outputs."""

    medical_probability: np.ndarray           # (N,)
    modality: np.ndarray | None               # (N, K) softmax; None for a one-output model


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


Runner = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]
CPUS = os.cpu_count() or 1


class ThreadRunners:
    """The model's runners, one per calling thread and thread count, made on first use: a LiteRT
    interpreter serves one call at a time, so threads that call the model at once each get their own."""

    def __init__(self, make: Callable[[int], Runner]):
        self._make, self._local = make, threading.local()

    def get(self, threads: int) -> Runner:
        own = vars(self._local).setdefault("runners", {})
        if threads not in own:
            own[threads] = self._make(threads)
        return own[threads]


class SharedRunner(ThreadRunners):
    """One runner for every calling thread, called under a lock: Keras (TensorFlow spreads a call
    over the cores itself), or a one-thread LiteRT interpreter for a model called for few images
    (the cascade's refine model), where an interpreter per thread costs memory."""

    def __init__(self, make: Callable[[int], Runner]):
        super().__init__(make)
        self._lock = threading.Lock()
        self._runner: Runner | None = None

    def get(self, threads: int) -> Runner:
        return self._locked

    def _locked(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        with self._lock:
            if self._runner is None:
                self._runner = self._make(1)
            return self._runner(batch)


class Classifier:
    """A loaded model: ``predict`` takes uint8 RGB batches of shape (N, S, S, 3)."""

    def __init__(self, model_dir: Path, meta: dict, runners: ThreadRunners, engine: str):
        self.model_dir, self.meta, self._runners, self.engine = model_dir, meta, runners, engine
        self.name = f"{meta['name']}@{meta['version']}"
        self.input_size = int(meta["input_size"])
        self.threshold = float(meta["threshold"])
        self.modalities: tuple[str, ...] = tuple(meta.get("modalities") or ())
        self.modality_min_confidence = float(meta.get("modality_min_confidence") or 0.0)
        self.refiner: Classifier | None = None    # the cascade's second model (model.json "refine")
        self.refine_band = (0.0, 0.0)

    @classmethod
    def load(cls, model_dir: str | os.PathLike, engine: str | None = None,
             shared: bool = False) -> "Classifier":
        """Load and verify a model directory (model.json, model.keras, model.tflite).

        ``engine`` None: the model's own. Loaded once per process for a crawl or command: ``config.LoadedModel``.
        ``shared``: one LiteRT interpreter for all threads (``SharedRunner``).
        """
        model_dir = Path(model_dir)
        meta = read_metadata(model_dir)
        engine = engine or meta.get("engine", "keras")
        if engine not in ENGINES:
            raise ModelError(f"unknown model engine {engine!r}; choose one of {', '.join(ENGINES)}")
        for name in meta["files"].values():
            verify_file(model_dir / name, meta["sha256"].get(name))
        path, classes = model_dir / meta["files"][engine], len(meta.get("modalities") or ())
        runners = _litert_runners(path, classes, shared) if engine == "litert" else _keras_runners(path, classes)
        clf = cls(model_dir, meta, runners, engine)
        clf._check_shape()
        if "refine" in meta:
            clf._load_refiner(meta["refine"], engine)
        return clf

    def _load_refiner(self, refine: dict, engine: str) -> None:
        """The cascade: a second, larger model in a folder of this one, for the images whose
        probability falls inside ``band``; it must name the same modalities."""
        band = refine.get("band") if isinstance(refine, dict) else None
        if not (isinstance(band, list) and len(band) == 2 and 0 < band[0] < band[1] < 1
                and isinstance(refine.get("model"), str)):
            raise ModelError(f"{self.model_dir}/model.json: \"refine\" must name a model folder and "
                             f"a band [low, high] within 0..1; got {refine!r}")
        self.refiner = Classifier.load(self.model_dir / refine["model"], engine, shared=True)
        if self.refiner.modalities != self.modalities:
            raise ModelError(f"{self.refiner.model_dir} names modalities {self.refiner.modalities}, "
                             f"{self.model_dir} {self.modalities}")
        self.refine_band = (float(band[0]), float(band[1]))

    def _check_shape(self) -> None:
        probe = np.zeros((1, self.input_size, self.input_size, 3), np.uint8)
        try:
            out = self.predict_all(probe)
        except Exception as exc:  # noqa: BLE001 - any failure here means a mismatched model
            raise ModelError(f"model in {self.model_dir} does not accept "
                             f"{self.input_size}x{self.input_size} RGB input: {exc}") from exc
        if out.medical_probability.shape != (1,):
            raise ModelError(f"model in {self.model_dir} returns shape {out.medical_probability.shape}, "
                             "expected one medical probability per image")
        k = len(self.modalities)
        if k and (out.modality is None or out.modality.shape != (1, k)):
            raise ModelError(f"model in {self.model_dir} returns modality scores of shape "
                             f"{None if out.modality is None else out.modality.shape}, expected (1, {k}) "
                             "for the modalities in model.json")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Medical probabilities (float32, shape (N,)) for a uint8 batch (N, S, S, 3)."""
        return self.predict_all(batch).medical_probability

    def predict_all(self, batch: np.ndarray, threads: int = CPUS,
                    refine_inputs: Callable[[list[int]], np.ndarray] | None = None) -> Outputs:
        """Every output of one model call on a uint8 batch (N, S, S, 3); ``threads``: the cores
        this call may use (the machine's; fewer when several threads call the model at once).

        ``refine_inputs(indices)``: those images at the refine model's size; given, the images this
        model is unsure of (inside its refine band) take the mean of its and the refine model's
        outputs (the cascade).
        """
        batch = np.asarray(batch)
        expected = (self.input_size, self.input_size, 3)
        if batch.ndim != 4 or batch.shape[1:] != expected or batch.dtype != np.uint8:
            raise ValueError(f"expected uint8 batch of shape (N, {expected[0]}, {expected[1]}, 3), "
                             f"got {batch.dtype} {batch.shape}")
        if len(batch) == 0:
            empty = np.zeros((0, len(self.modalities)), np.float32) if self.modalities else None
            return Outputs(np.zeros((0,), np.float32), empty)
        probability, modality = self._runners.get(threads)(batch)
        out = Outputs(np.asarray(probability, np.float32).reshape(-1),
                      None if modality is None else np.asarray(modality, np.float32))
        return out if refine_inputs is None else self._refined(out, refine_inputs, threads)

    def _refined(self, out: Outputs, refine_inputs: Callable[[list[int]], np.ndarray],
                 threads: int) -> Outputs:
        """``out`` with the unsure rows' outputs averaged with the refine model's."""
        low, high = self.refine_band
        unsure = np.flatnonzero((out.medical_probability > low) & (out.medical_probability < high))
        if self.refiner is None or unsure.size == 0:
            return out
        better = self.refiner.predict_all(refine_inputs(unsure.tolist()), threads)
        probability = out.medical_probability.copy()
        probability[unsure] = (probability[unsure] + better.medical_probability) / 2
        modality = None if out.modality is None else out.modality.copy()
        if modality is not None and better.modality is not None:
            modality[unsure] = (modality[unsure] + better.modality) / 2
        return Outputs(probability, modality)

    def verdict(self, probability: float, modality_scores: np.ndarray | None = None,
                medical_by_format: bool = False) -> Prediction:
        """Label and confidence at the model's threshold; a medical image's modality from its scores.

        ``medical_by_format``: the file's format already says medical (a DICOM image with an imaging
        Modality tag, a NIfTI volume): the label is medical with confidence 1, the probability stays.
        """
        medical = medical_by_format or probability >= self.threshold
        confidence = 1.0 if medical_by_format else probability if medical else 1.0 - probability
        modality, modality_confidence = "", None
        if medical and modality_scores is not None:
            modality, modality_confidence = self.modality_of(modality_scores)
        return Prediction(float(probability), MEDICAL if medical else NON_MEDICAL, float(confidence),
                          modality, modality_confidence)

    def modality_of(self, scores: np.ndarray) -> tuple[str, float]:
        """The top modality and its probability; "other" when that is below the model's minimum."""
        best = int(np.argmax(scores))
        confidence = float(scores[best])
        if confidence < self.modality_min_confidence:
            return OTHER_MODALITY, confidence
        return self.modalities[best], confidence

    def prepare(self, data: bytes, min_size: int = 0,
                max_pixels: int | None = images.DEFAULT_MAX_PIXELS, preview: int = 0,
                panels: bool = False):
        """Bytes -> (ImageInfo, model input) at this model's size; raises images.ImageError."""
        return images.prepare(data, self.input_size, min_size=min_size, max_pixels=max_pixels,
                              preview=preview, panels=panels)

    def classify_bytes(self, blobs: list[bytes], **prepare_args) -> list[Prediction]:
        """Verdicts for encoded images, the cascade included (``prepare_args``: see ``prepare``);
        raises images.ImageError for an image it cannot read."""
        arrays = [self.prepare(blob, **prepare_args)[1] for blob in blobs]

        def refine_inputs(rows: list[int]) -> np.ndarray:
            assert self.refiner is not None
            return np.stack([self.refiner.prepare(blobs[i], **prepare_args)[1] for i in rows])
        return self.classify_arrays(arrays, refine_inputs=refine_inputs)

    def classify_arrays(self, arrays: list[np.ndarray], medical_by_format: list[bool] | None = None,
                        threads: int = CPUS,
                        refine_inputs: Callable[[list[int]], np.ndarray] | None = None) -> list[Prediction]:
        """Verdicts for already prepared inputs (``medical_by_format``: see ``verdict``; ``threads``
        and ``refine_inputs``: see ``predict_all``)."""
        if not arrays:
            return []
        out = self.predict_all(np.stack(arrays), threads, refine_inputs)
        scores = [None] * len(arrays) if out.modality is None else out.modality
        forced = medical_by_format or [False] * len(arrays)
        return [self.verdict(p, s, f) for p, s, f in zip(out.medical_probability, scores, forced)]


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
    _check_modalities(meta, meta_path)
    return meta


def _check_modalities(meta: dict, meta_path: Path) -> None:
    """A two-output model's "modalities" (known, distinct, two or more) and its minimum confidence."""
    if "modalities" not in meta:
        return
    names = meta["modalities"]
    if (not isinstance(names, list) or len(names) < 2 or len(set(names)) != len(names)
            or not set(names) <= set(MODALITIES)):
        raise ModelError(f"{meta_path}: \"modalities\" must list two or more distinct names out of "
                         f"{', '.join(MODALITIES)}; got {names!r}")
    minimum = meta.get("modality_min_confidence")
    if not isinstance(minimum, (int, float)) or not 0 <= minimum <= 1:
        raise ModelError(f"{meta_path}: \"modality_min_confidence\" must be a number within 0..1 "
                         f"when \"modalities\" is given; got {minimum!r}")


def verify_file(path: Path, expected_sha256: str | None) -> None:
    """Raise ModelError unless the file exists and matches its recorded sha256."""
    if not path.is_file():
        raise ModelError(f"model file {path} is missing")
    if expected_sha256 and file_sha256(path) != expected_sha256:
        raise ModelError(f"model file {path} is corrupt: its sha256 does not match model.json")


def _keras_runners(path: Path, classes: int) -> ThreadRunners:
    """One shared runner, called under a lock (TensorFlow spreads a call over the cores itself)."""
    run = _load_keras(path, classes)
    return SharedRunner(lambda threads: run)


def _load_keras(path: Path, classes: int) -> Runner:
    """A runner batch -> (probabilities, modality scores or None); outputs found by name."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - keras raises many types for a bad file
        raise ModelError(f"cannot load Keras model {path}: {exc}") from exc
    names = list(model.output_names)
    wanted = [PROBABILITY_OUTPUT, MODALITY_OUTPUT] if classes else names[:1]
    if sorted(names) != sorted(wanted):
        raise ModelError(f"Keras model {path} has outputs {names}; model.json lists "
                         f"{classes or 'no'} modalities, so it needs "
                         f"{' and '.join(repr(w) for w in wanted) if classes else 'exactly one output'}")
    size = model.input_shape[1]
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                     input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)])

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = fn(batch)
        if not isinstance(out, dict):
            out = dict(zip(names, out if isinstance(out, (list, tuple)) else [out]))
        if not classes:
            return out[names[0]].numpy(), None
        return out[PROBABILITY_OUTPUT].numpy(), out[MODALITY_OUTPUT].numpy()
    return run


def _litert_runners(path: Path, classes: int, shared: bool = False) -> ThreadRunners:
    """An interpreter per thread and thread count, or one for all (``shared``); checked now: the
    package is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ModelError("engine 'litert' needs the ai-edge-litert package") from exc
    make = functools.partial(_load_litert, Interpreter, path, classes)
    return SharedRunner(make) if shared else ThreadRunners(make)


def _load_litert(interpreter: type, path: Path, classes: int, threads: int) -> Runner:
    """A runner batch -> (probabilities, modality scores or None); outputs found by their width."""
    try:
        interp = interpreter(model_path=str(path), num_threads=threads)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot load LiteRT model {path}: {exc}") from exc
    inp = interp.get_input_details()[0]["index"]
    prob, modality = _litert_outputs(path, interp.get_output_details(), classes)
    shape = [0]

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if shape[0] != len(batch):
            interp.resize_tensor_input(inp, batch.shape)
            with native_info_silenced():
                interp.allocate_tensors()
            shape[0] = len(batch)
        interp.set_tensor(inp, batch)
        interp.invoke()
        return (interp.get_tensor(prob).copy(),
                None if modality is None else interp.get_tensor(modality).copy())
    return run


def _litert_outputs(path: Path, details: list[dict], classes: int) -> tuple[int, int | None]:
    """Tensor indices of the probability (last dimension 1) and modality (last dimension K) outputs."""
    widths = {int(d.get("shape_signature", d["shape"])[-1]): d["index"] for d in details}
    if classes and len(details) == 2 and set(widths) == {1, classes}:
        return widths[1], widths[classes]
    if not classes and len(details) == 1 and set(widths) == {1}:
        return widths[1], None
    raise ModelError(f"LiteRT model {path} has outputs of widths {sorted(widths)}; model.json lists "
                     f"{classes or 'no'} modalities, so it needs "
                     f"{f'widths 1 and {classes}' if classes else 'one output of width 1'}")
