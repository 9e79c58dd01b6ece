"""Augmented views: the false-colour ramp and the views that use it."""

import random

import numpy as np
from PIL import Image

from training.augment import false_colour
from training.features import FALSE_COLOUR_FROM_VIEW, load_view


def grey_ramp() -> Image.Image:
    return Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (8, 1))).convert("RGB")


def test_false_colour_maps_dark_to_dark_and_light_to_light_in_colour():
    for seed in range(20):
        out = np.asarray(false_colour(grey_ramp(), random.Random(seed)), float)
        assert out.shape == (8, 256, 3)
        assert out[0, 0].sum() < out[0, 255].sum()
        assert out[0, 0].max() <= 60 and out[0, 255].min() >= 190
    spread = [np.ptp(np.asarray(false_colour(grey_ramp(), random.Random(s)), float)[0], axis=1).max()
              for s in range(20)]
    assert max(spread) > 40          # the ramp's middle stops are coloured, not grey


def test_false_colour_view_is_reproducible_and_colours_some_grey_images(tmp_path):
    grey_ramp().resize((256, 256)).save(tmp_path / "ramp.png")
    path = str(tmp_path / "ramp.png")
    view = load_view(path, 64, FALSE_COLOUR_FROM_VIEW, seed=7)
    assert view is not None and view.shape == (64, 64, 3)
    assert np.array_equal(view, load_view(path, 64, FALSE_COLOUR_FROM_VIEW, seed=7))
    copies = []
    for i in range(30):
        (tmp_path / f"{i}.png").write_bytes((tmp_path / "ramp.png").read_bytes())
        copies.append(str(tmp_path / f"{i}.png"))
    coloured = [np.ptp(load_view(p, 32, FALSE_COLOUR_FROM_VIEW, seed=7).astype(int), axis=2).mean() > 20
                for p in copies]
    assert 0 < sum(coloured) < len(coloured)
