"""Model builders: the product model takes uint8 RGB and returns a calibrated medical probability
and, with a modality head, the modality softmax, from one backbone pass."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from training.backbone import make_backbone, multilevel_features

BACKBONES = Path(__file__).resolve().parent.parent / "models" / "backbones"


def backbone_weights(variant: str) -> Path:
    """The converted ImageNet weights of a backbone variant."""
    return BACKBONES / f"efficientnet_{variant}_imagenet.weights.h5"


def make_feature_extractor(input_size: int, variant: str = "lite0",
                           weights: Path | str | None = "imagenet") -> keras.Model:
    """uint8 RGB (N, S, S, 3) -> multi-level features; the preprocessing lives inside the model.

    ``variant`` names one backbone ("lite0", "lite2") or several joined by "+", whose features are
    concatenated (``weights`` other than "imagenet" applies to a single backbone only).
    """
    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    outputs = []
    for name in variant.split("+"):
        backbone = make_backbone(input_size, multilevel=True, variant=name)
        if weights is not None:
            backbone.load_weights(backbone_weights(name) if weights == "imagenet" else weights)
        backbone.trainable = False
        outputs.append(backbone(x, training=False))
    features = outputs[0] if len(outputs) == 1 else layers.Concatenate(name="backbones")(outputs)
    return keras.Model(inputs, features, name="features")


def feature_width(variant: str) -> int:
    """Width of the features of one backbone or a "+"-joined combination."""
    return sum(multilevel_features(name) for name in variant.split("+"))


def make_head(dropout: float = 0.3, l2: float = 1e-4, features: int | None = None,
              outputs: int = 1, hidden: int = 0, mean=None, variance=None) -> keras.Model:
    """Features -> logits (one: medical vs not; K: modality), optionally through a hidden layer.

    With ``mean`` and ``variance`` (of the training features) the head standardises its input.
    """
    inputs = keras.Input((features or feature_width("lite0"),), name="features")
    x = inputs
    if mean is not None:
        x = layers.Normalization(mean=mean, variance=variance + 1e-6, name="standardise")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    if hidden:
        x = layers.Dense(hidden, activation="relu", name="head_hidden",
                         kernel_regularizer=keras.regularizers.l2(l2))(x)
        x = layers.Dropout(dropout, name="head_hidden_dropout")(x)
    logit = layers.Dense(outputs, name="head", kernel_regularizer=keras.regularizers.l2(l2))(x)
    return keras.Model(inputs, logit, name="head" if outputs == 1 else "modality_head")


def make_model(input_size: int, head: keras.Model, scale: float = 1.0, bias: float = 0.0,
               modality_head: keras.Model | None = None, variant: str = "lite0",
               weights: Path | str | None = "imagenet") -> keras.Model:
    """The product model: uint8 image -> features -> head logit -> Platt calibration -> sigmoid
    (``medical_probability``, (N, 1)) and, with a modality head, its softmax (``modality``, (N, K))."""
    features = make_feature_extractor(input_size, variant, weights)
    calibrated = layers.Rescaling(scale, offset=bias, name="calibration")(head(features.output))
    outputs = {"medical_probability": layers.Activation("sigmoid", name="medical_probability")(calibrated)}
    if modality_head is not None:
        outputs["modality"] = layers.Softmax(name="modality")(modality_head(features.output))
    return keras.Model(features.input, outputs if len(outputs) > 1 else outputs["medical_probability"],
                       name="medcrawl_classifier")


def make_kind_model(input_size: int, variant: str, mean: np.ndarray, variance: np.ndarray,
                    kernel: np.ndarray, bias: np.ndarray, medical: np.ndarray,
                    modality_of_kind: np.ndarray) -> keras.Model:
    """The product model of a kind head: uint8 image -> features -> standardised -> kind logits
    (already divided by the temperature) -> ``medical_probability`` (N, 1), the sum of the medical
    kinds' softmax, and ``modality`` (N, M), the softmax over the medical kinds alone summed per
    modality (``modality_of_kind``: one-hot (medical kinds, M)). Plain layers only, so both engines
    load it without custom code."""
    features = make_feature_extractor(input_size, variant)
    x = layers.Normalization(mean=mean, variance=variance, name="standardise")(features.output)
    kinds = layers.Softmax(name="kinds")(layers.Dense(len(bias), name="kind_logits")(x))
    medical_logits = layers.Dense(int(medical.sum()), name="medical_kind_logits")(x)
    to_medical = layers.Dense(1, use_bias=False, trainable=False, name="medical_probability")
    to_modality = layers.Dense(modality_of_kind.shape[1], use_bias=False, trainable=False, name="modality")
    outputs = {"medical_probability": to_medical(kinds),
               "modality": to_modality(layers.Softmax(name="medical_kinds")(medical_logits))}
    model = keras.Model(features.input, outputs, name="medcrawl_classifier")
    model.get_layer("kind_logits").set_weights([kernel, bias])
    model.get_layer("medical_kind_logits").set_weights([kernel[:, medical], bias[medical]])
    to_medical.set_weights([medical.astype("float32")[:, None]])
    to_modality.set_weights([modality_of_kind.astype("float32")])
    return model
