"""EfficientNet-Lite0 in Keras: the backbone the classifier is built on.

Lite0 is EfficientNet-B0 without squeeze-excitation, with ReLU6 and a fixed stem and head, so it
runs well on CPUs and quantizes cleanly. Layer names follow the PyTorch checkpoint that
`training/convert_efficientnet_lite0.py` reads, so weights map one to one.
"""

from __future__ import annotations

import keras
from keras import layers

# (kernel, stride, expand ratio, output channels, repeats) per stage, as in EfficientNet-B0.
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
BN_EPSILON = 1e-3
FEATURES = 1280
MULTILEVEL_FEATURES = 80 + 112 + 192 + 320 + FEATURES


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


def make_backbone(input_size: int, multilevel: bool = False) -> keras.Model:
    """Lite0 feature extractor: float RGB in [-1, 1] -> pooled features.

    With ``multilevel`` the outputs of the last four stages are average-pooled and concatenated
    with the 1280-d head features (1984-d): mid-level texture features carry modality cues that
    the ImageNet-specific top layer washes out.
    """
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = _conv_bn(inputs, 32, 3, 2, "_conv_stem", "_bn0")
    index, pooled = 0, []
    for stage, (kernel, stride, expand, out_ch, repeats) in enumerate(STAGES):
        for r in range(repeats):
            x = _block(x, index, kernel, stride if r == 0 else 1, expand, out_ch)
            index += 1
        if multilevel and stage >= 3:
            pooled.append(layers.GlobalAveragePooling2D(name=f"stage{stage}_pool")(x))
    x = _conv_bn(x, FEATURES, 1, 1, "_conv_head", "_bn1")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooled:
        x = layers.Concatenate(name="multilevel")(pooled + [x])
    return keras.Model(inputs, x, name="efficientnet_lite0")
