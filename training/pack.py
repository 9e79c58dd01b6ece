"""Pack a labelled image tree into two files for fine-tuning elsewhere: ``images.bin`` + ``index.csv``.

    python -m training.pack --data DIR [--data DIR ...] [--manifest CSV] --out PACK [--max-per-source N]

Each image is stored as what the product's model sees before its final resize: an image of at most
``--size`` pixels a side is kept at its own size (PNG or WebP, whichever is smaller), a larger one
as its ``--size`` square view (WebP), so ``training.finetune`` rebuilds the product's input (the
same bilinear squash). The
index names every image's label, source and modality; sources stay whole (held-out folds).
"""

from __future__ import annotations

import argparse
import io
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image

from medcrawl.model import images
from training import data, modality


def encode(path: str, size: int, quality: int) -> bytes | None:
    """The bytes stored for one image (None if unreadable)."""
    try:
        img, _ = images.open_image(Path(path).read_bytes(), draft_size=size, reduce_to=size)
        rgb = images.to_rgb(img)
    except (OSError, images.ImageError):
        return None
    if max(rgb.size) > size:
        return _save(Image.fromarray(images.resize_square(rgb, size)), "WEBP", quality=quality, method=4)
    return min(_save(rgb, "PNG", optimize=True), _save(rgb, "WEBP", quality=quality, method=4), key=len)


def _save(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def write_pack(frame: pd.DataFrame, out: Path, size: int, quality: int, workers: int = 2) -> pd.DataFrame:
    """Write images.bin and index.csv; returns the index (unreadable images left out, and said)."""
    out.mkdir(parents=True, exist_ok=True)
    rows, offset = [], 0
    with open(out / "images.bin", "wb") as blob, ProcessPoolExecutor(workers) as pool:
        encoded = pool.map(encode, frame["path"], [size] * len(frame), [quality] * len(frame), chunksize=32)
        for (_, row), payload in zip(frame.iterrows(), encoded):
            if payload is None:
                print(f"unreadable, left out: {row['path']}")
                continue
            blob.write(payload)
            rows.append({"path": os.path.relpath(row["path"]), "source": row["source"],
                         "label": int(row["label"]), "label_name": row["label_name"],
                         "modality": row["modality"], "modality_id": int(row["modality_id"]),
                         "name": Path(row["path"]).name, "offset": offset, "length": len(payload)})
            offset += len(payload)
    index = pd.DataFrame(rows)
    index.to_csv(out / "index.csv", index=False)
    return index


def split(pack: Path, outs: list[Path]) -> None:
    """Deal a pack's images into smaller packs, every source's images in turn, so each has every source."""
    index = pd.read_csv(pack / "index.csv", keep_default_na=False)
    shard = index.groupby("source").cumcount() % len(outs)
    with open(pack / "images.bin", "rb") as blob:
        for k, out in enumerate(outs):
            out.mkdir(parents=True, exist_ok=True)
            part, offset = index[shard == k].copy(), 0
            with open(out / "images.bin", "wb") as dst:
                for i, row in part.iterrows():
                    blob.seek(row["offset"])
                    dst.write(blob.read(row["length"]))
                    part.loc[i, "offset"] = offset
                    offset += row["length"]
            part.to_csv(out / "index.csv", index=False)
            print(f"{out}: {len(part)} images, {offset / 2**20:.1f} MiB")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", required=True, help="folder with medical/ and non-medical/")
    p.add_argument("--manifest", action="append", default=[], help="extra MANIFEST.csv (modality column)")
    p.add_argument("--out", type=Path, required=True, help="pack folder to write")
    p.add_argument("--size", type=int, default=224, help="model input size (pixels)")
    p.add_argument("--quality", type=int, default=85, help="WebP quality of the larger images")
    p.add_argument("--max-per-source", type=int, default=0, help="sample this many per source (0: all)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--split", type=int, default=0, help="also deal the pack into this many parts (OUT/partK)")
    args = p.parse_args(argv)
    frame = data.sample(data.scan(args.data), args.max_per_source, args.seed)
    frame = modality.attach(frame, args.data, args.manifest)
    index = write_pack(frame, args.out, args.size, args.quality)
    total = int(index["length"].sum())
    print(f"{len(index)} images from {index['source'].nunique()} sources, {total / 2**20:.1f} MiB "
          f"({total / max(1, len(index)) / 1024:.1f} KiB each) in {args.out}")
    print(index.groupby(["label_name", "source"])["length"].agg(["size", "mean"]).round(0).to_string())
    if args.split:
        split(args.out, [args.out / f"part{k}" for k in range(args.split)])


if __name__ == "__main__":
    main()
