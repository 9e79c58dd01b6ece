"""Model builders: the product model takes uint8 RGB and returns a calibrated medical probability."""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from training.backbone import MULTILEVEL_FEATURES, make_backbone

BACKBONE_WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "backbones" / \
    "efficientnet_lite0_imagenet.weights.h5"


def make_feature_extractor(input_size: int, weights: Path | None = BACKBONE_WEIGHTS) -> keras.Model:
    """uint8 RGB (N, S, S, 3) -> multi-level features; the preprocessing lives inside the model."""
    backbone = make_backbone(input_size, multilevel=True)
    if weights is not None:
        backbone.load_weights(weights)
    backbone.trainable = False
    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    return keras.Model(inputs, backbone(x, training=False), name="features")


def make_head(dropout: float = 0.3, l2: float = 1e-4) -> keras.Model:
    """Features -> one logit (medical vs not)."""
    inputs = keras.Input((MULTILEVEL_FEATURES,), name="features")
    x = layers.Dropout(dropout, name="head_dropout")(inputs)
    logit = layers.Dense(1, name="head", kernel_regularizer=keras.regularizers.l2(l2))(x)
    return keras.Model(inputs, logit, name="head")


def make_model(input_size: int, head: keras.Model, scale: float = 1.0, bias: float = 0.0,
               weights: Path | None = BACKBONE_WEIGHTS) -> keras.Model:
    """The product model: uint8 image -> features -> head logit -> Platt calibration -> sigmoid."""
    features = make_feature_extractor(input_size, weights)
    logit = head(features.output)
    calibrated = layers.Rescaling(scale, offset=bias, name="calibration")(logit)
    prob = layers.Activation("sigmoid", name="medical_probability")(calibrated)
    return keras.Model(features.input, prob, name="medcrawl_classifier")
