"""Augmentations that keep colour, resolution and compression from deciding the label.

Every transform is applied to both classes with the same odds, so grey, tinted, blurry, cropped or
heavily compressed images appear on both sides of the decision.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageEnhance, ImageFilter, ImageOps


def augment(img: Image.Image, rng: random.Random) -> Image.Image:
    """One random view of an RGB image."""
    img = random_crop(img, rng)
    if rng.random() < 0.15:
        img = pad(img, rng)
    if rng.random() < 0.3:
        img = contrast(img, rng)
    if rng.random() < 0.15:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    if rng.random() < 0.15:
        img = ImageOps.flip(img)
    if rng.random() < 0.3:
        img = ImageOps.grayscale(img).convert("RGB")
    elif rng.random() < 0.25:
        img = tint(img, rng)
    if rng.random() < 0.3:
        img = down_up(img, rng)
    if rng.random() < 0.4:
        img = jpeg(img, rng.randint(15, 90))
    return img


def random_crop(img: Image.Image, rng: random.Random) -> Image.Image:
    """Keep 50-100 % of the area with aspect jitter within 1:2..2:1 (squashing is part of the input)."""
    w, h = img.size
    area = rng.uniform(0.5, 1.0) * w * h
    ratio = 2 ** rng.uniform(-1, 1)
    cw = min(w, max(1, int(round((area * ratio) ** 0.5))))
    ch = min(h, max(1, int(round((area / ratio) ** 0.5))))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def tint(img: Image.Image, rng: random.Random) -> Image.Image:
    """Map the grey levels onto a random dark-to-light colour ramp (false colour, sepia, stains)."""
    dark = tuple(rng.randint(0, 90) for _ in range(3))
    light = tuple(rng.randint(160, 255) for _ in range(3))
    return ImageOps.colorize(ImageOps.grayscale(img), dark, light)


def down_up(img: Image.Image, rng: random.Random) -> Image.Image:
    """Lose resolution: shrink to 24-96 px on the long side, then scale back up."""
    w, h = img.size
    scale = rng.randint(24, 96) / max(w, h)
    if scale >= 1:
        return img
    small = img.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.BILINEAR)
    return small.resize((w, h), Image.BILINEAR)


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    """Re-encode as JPEG at the given quality."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def pad(img: Image.Image, rng: random.Random) -> Image.Image:
    """Place the image on a black or white canvas up to 1.5x larger (figure margins, letterboxing)."""
    w, h = img.size
    cw, ch = int(w * rng.uniform(1.0, 1.5)), int(h * rng.uniform(1.0, 1.5))
    canvas = Image.new("RGB", (cw, ch), (0, 0, 0) if rng.random() < 0.5 else (255, 255, 255))
    canvas.paste(img, (rng.randint(0, cw - w), rng.randint(0, ch - h)))
    return canvas


def contrast(img: Image.Image, rng: random.Random) -> Image.Image:
    """Jitter brightness and contrast, as different scanners, windows and cameras do."""
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.6, 1.5))
    return ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
