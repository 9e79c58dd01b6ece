"""Compound figures: panels found by their gutters (medcrawl.model.panels), in labelling and the CLI."""

from __future__ import annotations

import io
import json

import matplotlib
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from medcrawl.items import ImageItem
from medcrawl.model.labelling import label_items, panel_rows
from medcrawl.model.panels import find_panels, is_compound
from tests.support.oneoff_assets import mri_png, photo_jpeg

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402


def grid(rows: int, cols: int, side: int = 120, gutter: int = 6, colour: int = 255, seed: int = 0) -> Image.Image:
    """A rows x cols figure of noise panels between gutters of one colour."""
    rng = np.random.default_rng(seed)
    pixels = np.full((rows * side + (rows + 1) * gutter, cols * side + (cols + 1) * gutter, 3), colour, np.uint8)
    for r in range(rows):
        for c in range(cols):
            top, left = gutter + r * (side + gutter), gutter + c * (side + gutter)
            pixels[top:top + side, left:left + side] = rng.integers(0, 256, (side, side, 3))
    return Image.fromarray(pixels)


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


@pytest.mark.parametrize("rows, cols", [(1, 2), (2, 1), (2, 2), (2, 3), (3, 4)])
def test_generated_grids_give_one_box_per_panel(rows, cols):
    side, gutter = 120, 6
    boxes = find_panels(grid(rows, cols, side, gutter))
    expected = [(gutter + c * (side + gutter), gutter + r * (side + gutter),
                 gutter + c * (side + gutter) + side, gutter + r * (side + gutter) + side)
                for r in range(rows) for c in range(cols)]
    assert list(boxes) == expected


def test_black_gutters_and_jpeg_noise_still_found():
    figure = Image.open(io.BytesIO(encoded(grid(2, 2, colour=0), "JPEG", quality=80)))
    assert len(find_panels(figure)) == 4


def test_boxes_are_given_in_the_original_size():
    small = grid(1, 2, side=100, gutter=10)
    boxes = find_panels(small, size=(small.width * 3, small.height * 3))
    assert boxes == ((30, 30, 330, 330), (360, 30, 660, 330))


def test_one_picture_is_not_compound():
    pixels = np.random.default_rng(1).integers(0, 256, (300, 400, 3)).astype(np.uint8)
    assert find_panels(Image.fromarray(pixels)) == ((0, 0, 400, 300),)
    with_margin = np.full((340, 440, 3), 255, np.uint8)
    with_margin[20:320, 20:420] = pixels
    assert not is_compound(find_panels(Image.fromarray(with_margin)))


def test_glyphs_and_thin_strips_are_not_panels():
    """Two words on white, and a picture with a caption strip under it: one panel at most."""
    words = Image.new("RGB", (600, 200), "white")
    pixels = np.asarray(words).copy()
    pixels[60:140, 40:60] = 0                        # a stroke of a letter
    pixels[60:140, 300:320] = 0
    pixels[60:70, 300:400] = 0
    assert not is_compound(find_panels(Image.fromarray(pixels)))
    captioned = np.full((400, 400, 3), 255, np.uint8)
    captioned[0:340, :] = np.random.default_rng(2).integers(0, 256, (340, 400, 3))
    captioned[360:372, 20:200] = 0                   # a line of text under the picture
    assert not is_compound(find_panels(Image.fromarray(captioned)))


@pytest.mark.parametrize("data", [photo_jpeg, mri_png], ids=["portrait photo", "MRI slice"])
def test_real_single_images_are_not_compound(data):
    assert not is_compound(find_panels(Image.open(io.BytesIO(data())).convert("RGB")))


def test_real_matplotlib_subplots_are_compound():
    """A figure drawn the way papers draw them: 2 x 2 framed subplots with white space between."""
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        photo = np.asarray(Image.open(fh))
    mri = np.asarray(Image.open(io.BytesIO(mri_png())))
    fig, axes = plt.subplots(2, 2, figsize=(6, 6), dpi=80)
    for ax, picture in zip(axes.flat, (photo, mri, mri[::-1], photo[:, ::-1])):
        ax.imshow(picture, cmap="gray")
        ax.set_xticks([]), ax.set_yticks([])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    assert len(find_panels(Image.open(buf).convert("RGB"))) == 4


def test_labelling_fills_compound_and_panel_rows_follow(classifier):
    figure = ImageItem(image_url="http://x/fig.png", source_url="http://x/a.html",
                       body=encoded(grid(2, 3, side=100)), caption="Figure 2", license="CC-BY-4.0")
    single = ImageItem(image_url="http://x/photo.jpg", body=photo_jpeg())
    label_items(classifier, [figure, single], min_size=0)
    assert (figure.compound, single.compound) == (True, False)
    panels = panel_rows(figure)
    assert [p.image_url for p in panels] == [f"http://x/fig.png#panel={n}" for n in range(1, 7)]
    assert [p.panel for p in panels] == list(range(1, 7))
    assert {(p.caption, p.license, p.source_url) for p in panels} == {("Figure 2", "CC-BY-4.0", "http://x/a.html")}
    assert {Image.open(io.BytesIO(p.body)).size for p in panels} == {(100, 100)}
    assert panel_rows(single) == [] and panel_rows(panels[0]) == []


def test_classify_split_panels_adds_the_panel_rows(tmp_path):
    from medcrawl.oneoff.cli import main
    (tmp_path / "figure.png").write_bytes(encoded(grid(1, 2, side=100)))
    (tmp_path / "photo.jpg").write_bytes(photo_jpeg())
    out = tmp_path / "rows.jsonl"
    assert main(["classify", "--split-panels", "--min-size", "0", "-q", "-o", str(out),
                 str(tmp_path / "figure.png"), str(tmp_path / "photo.jpg")]) == 0
    rows = {r["image_url"].rsplit("/", 1)[-1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"figure.png", "figure.png#panel=1", "figure.png#panel=2", "photo.jpg"}
    assert (rows["figure.png"]["compound"], rows["photo.jpg"]["compound"]) == (True, False)
    assert [rows[f"figure.png#panel={n}"]["panel"] for n in (1, 2)] == [1, 2]
    assert all(rows[f"figure.png#panel={n}"]["status"] == "ok" for n in (1, 2))
