"""EfficientNet-Lite0/Lite2 in Keras: the backbones the classifier is built on.

Lite is EfficientNet without squeeze-excitation, with ReLU6 and a fixed stem (32 channels), a fixed
head (1280 channels) and one block in the first and last stage whatever the depth multiplier, so it
runs well on CPUs and quantizes cleanly. Layer names follow the PyTorch checkpoints that
`training/convert_efficientnet_lite.py` reads, so weights map one to one.
"""

from __future__ import annotations

import math

import keras
from keras import layers

# (kernel, stride, expand ratio, output channels, repeats) per stage, as in EfficientNet-B0.
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
# name -> (width multiplier, depth multiplier, native input size)
VARIANTS = {"lite0": (1.0, 1.0, 224), "lite2": (1.1, 1.2, 260)}
BN_EPSILON = 1e-3
FEATURES = 1280
MULTILEVEL_FROM_STAGE = 3


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by the width multiplier, rounded to the divisor (never down by > 10 %)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def stages(variant: str = "lite0") -> list[tuple[int, int, int, int, int]]:
    """The stage table scaled for a variant; the first and last stage keep one block (Lite rule)."""
    width, depth, _ = VARIANTS[variant]
    last = len(STAGES) - 1
    return [(k, s, e, round_filters(c, width), r if i in (0, last) else int(math.ceil(r * depth)))
            for i, (k, s, e, c, r) in enumerate(STAGES)]


def multilevel_features(variant: str = "lite0") -> int:
    """Width of the multi-level feature vector (pooled last four stages + head)."""
    return sum(c for _, _, _, c, _ in stages(variant)[MULTILEVEL_FROM_STAGE:]) + FEATURES


MULTILEVEL_FEATURES = multilevel_features("lite0")


def _conv_bn(x, filters, kernel, stride, name, bn_name, act=True, depthwise=False):
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=name)(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=bn_name)(x)
    return layers.ReLU(6.0, name=f"{bn_name}_relu6")(x) if act else x


def _block(x, index, kernel, stride, expand, out_ch):
    prefix = f"blocks.{index}"
    in_ch = x.shape[-1]
    h = x
    if expand != 1:
        h = _conv_bn(h, in_ch * expand, 1, 1, f"{prefix}._expand_conv", f"{prefix}._bn0")
    h = _conv_bn(h, None, kernel, stride, f"{prefix}._depthwise_conv", f"{prefix}._bn1",
                 depthwise=True)
    h = _conv_bn(h, out_ch, 1, 1, f"{prefix}._project_conv", f"{prefix}._bn2", act=False)
    if stride == 1 and in_ch == out_ch:
        h = layers.Add(name=f"{prefix}_add")([x, h])
    return h


def make_backbone(input_size: int, multilevel: bool = False, variant: str = "lite0") -> keras.Model:
    """Lite feature extractor: float RGB in [-1, 1] -> pooled features.

    With ``multilevel`` the outputs of the last four stages are average-pooled and concatenated
    with the 1280-d head features (1984-d for Lite0, 2048-d for Lite2): mid-level texture
    features carry modality cues that the ImageNet-specific top layer washes out.
    """
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = _conv_bn(inputs, 32, 3, 2, "_conv_stem", "_bn0")
    index, pooled = 0, []
    for stage, (kernel, stride, expand, out_ch, repeats) in enumerate(stages(variant)):
        for r in range(repeats):
            x = _block(x, index, kernel, stride if r == 0 else 1, expand, out_ch)
            index += 1
        if multilevel and stage >= MULTILEVEL_FROM_STAGE:
            pooled.append(layers.GlobalAveragePooling2D(name=f"stage{stage}_pool")(x))
    x = _conv_bn(x, FEATURES, 1, 1, "_conv_head", "_bn1")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooled:
        x = layers.Concatenate(name="multilevel")(pooled + [x])
    return keras.Model(inputs, x, name=f"efficientnet_{variant}")
