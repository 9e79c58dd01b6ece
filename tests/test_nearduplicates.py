"""Near-duplicates: the same picture resized or recompressed is found; different pictures are not."""

import io

import numpy as np
from PIL import Image

from medcrawl.nearduplicates import Fingerprint, NearDuplicateIndex


def scene(seed: int, size=(320, 240)) -> Image.Image:
    """A photo-like picture: smooth gradients, blobs and fine noise, different for every seed."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for c in range(3):
        img[..., c] = 120 + 80 * np.sin(rng.uniform(2, 9) * xx + rng.uniform(0, 6)) * np.cos(rng.uniform(2, 9) * yy)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 60)
        mask = (np.mgrid[0:h, 0:w][1] - cx) ** 2 + (np.mgrid[0:h, 0:w][0] - cy) ** 2 < r * r
        img[mask] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def reencoded(img: Image.Image, scale: float, quality: int) -> Image.Image:
    small = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_resized_and_recompressed_copies_are_the_same_picture():
    for seed in range(10):
        original = Fingerprint.of(scene(seed))
        for scale, quality in ((0.5, 75), (0.8, 40), (1.0, 30)):
            assert original.same_picture(Fingerprint.of(reencoded(scene(seed), scale, quality)))


def test_different_pictures_crops_and_greyscale_edits_differ():
    prints = [Fingerprint.of(scene(seed)) for seed in range(30)]
    assert not any(a.same_picture(b) for i, a in enumerate(prints) for b in prints[i + 1:])
    img = scene(1)
    assert not prints[1].same_picture(Fingerprint.of(img.crop((0, 0, 200, 240))))   # another aspect


def test_index_names_the_first_picture_and_keeps_only_it():
    index: NearDuplicateIndex[str] = NearDuplicateIndex()
    assert index.add("a", Fingerprint.of(scene(1))) is None
    assert index.add("b", Fingerprint.of(scene(2))) is None
    assert index.add("a-small", Fingerprint.of(reencoded(scene(1), 0.5, 70))) == "a"
    assert index.add("b-q30", Fingerprint.of(reencoded(scene(2), 1.0, 30))) == "b"
    assert len(index) == 2
