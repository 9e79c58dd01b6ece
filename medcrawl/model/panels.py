"""Compound (multi-panel) figures: the panels a figure's gutters separate.

A gutter is a run of rows (or columns) of the gutter colour crossing the whole region, such as
the white or black strips between the panels of a journal figure; the colours tried are the
figure's border colour, white and black, and the one giving most panels wins. ``find_panels`` cuts the figure
along its gutters, alternately across and down (an XY cut), down to regions no gutter crosses; a
region is a panel when it is big enough to be a picture of its own (``MIN_PANEL_SIDE`` of the
figure's side each way) and picture-like (content along two of its edges: a photo, a framed
plot), not a label, a glyph or a silhouette. A figure with two panels or more, together covering
``MIN_COVER`` of it, is compound. Works on the decoded RGB copy labelling already has; boxes come back in the original
image's pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

TOLERANCE = 40            # a gutter pixel is within this many levels (each channel) of the gutter colour
GUTTER_SHARE = 0.97       # share of a line's pixels that must match for the line to be a gutter
MIN_GUTTER = 0.001        # a gutter is at least this share of the figure's side (and >= 1 px)
MIN_PANEL_SIDE = 0.15     # a panel is at least this share of the figure's width and height
EDGE_SHARE = 0.6          # a picture-like panel's content covers this share of two of its edges
MIN_COVER = 0.4           # the panels cover at least this share of the figure (not stray pieces of one)
MIN_FIGURE_SIDE = 64      # smaller figures are never compound
DETECTION_SIDE = 640      # larger figures are reduced (by a whole factor) to at most this
MAX_DEPTH = 4             # cuts across, then down, ... at most this deep

Box = tuple[int, int, int, int]     # left, top, right, bottom (right/bottom exclusive)


def find_panels(image: Image.Image, size: tuple[int, int] | None = None) -> tuple[Box, ...]:
    """The panels of a figure, in reading order, in pixels of ``size`` (the original image's
    width and height; default the image's own); one box (the whole figure) when it has none."""
    width, height = size or image.size
    factor = -(-max(image.size) // DETECTION_SIDE)
    if factor > 1:
        image = image.reduce(factor)
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    whole: Box = (0, 0, image.width, image.height)
    if min(image.size) < MIN_FIGURE_SIDE:
        return ((0, 0, width, height),)
    gap = max(1, round(MIN_GUTTER * max(image.size)))
    panels = max((_panels(pixels, whole, gap, colour) for colour in _gutter_colours(pixels)), key=len)
    if len(panels) < 2 or _area(panels) < MIN_COVER * image.width * image.height:
        return ((0, 0, width, height),)
    sx, sy = width / image.width, height / image.height
    return tuple((round(l * sx), round(t * sy), round(r * sx), round(b * sy)) for l, t, r, b in panels)


def _area(boxes: list[Box]) -> int:
    return sum((right - left) * (bottom - top) for left, top, right, bottom in boxes)


def _gutter_colours(pixels: np.ndarray) -> list[np.ndarray]:
    """The colours gutters may have: the figure's border colour, white and black."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return [np.median(border, axis=0), np.array([255, 255, 255]), np.array([0, 0, 0])]


def _panels(pixels: np.ndarray, whole: Box, gap: int, colour: np.ndarray) -> list[Box]:
    """The panels that gutters of one colour separate."""
    size = (whole[2], whole[3])
    return [box for box in _cut(pixels, whole, gap, colour, across=True, depth=0)
            if _big_enough(box, size) and _picture_like(pixels, box, colour)]


def is_compound(panels: tuple[Box, ...]) -> bool:
    return len(panels) > 1


def crop_panels(image: Image.Image, panels: tuple[Box, ...]) -> list[Image.Image]:
    """Each panel of a compound figure as an image of its own (``image`` at the boxes' scale)."""
    return [image.crop(box) for box in panels]


def _big_enough(box: Box, size: tuple[int, int]) -> bool:
    left, top, right, bottom = box
    return (right - left) >= MIN_PANEL_SIDE * size[0] and (bottom - top) >= MIN_PANEL_SIDE * size[1]


def _picture_like(pixels: np.ndarray, box: Box, colour: np.ndarray) -> bool:
    """A rectangle of picture (a photo, a framed plot), not a glyph or a silhouette: content runs
    along at least two of its edges (an edge on the figure's border counts)."""
    left, top, right, bottom = box
    height, width = pixels.shape[:2]
    edges = ((pixels[top, left:right], top == 0), (pixels[bottom - 1, left:right], bottom == height),
             (pixels[top:bottom, left], left == 0), (pixels[top:bottom, right - 1], right == width))
    full = sum(on_border or (np.abs(edge - colour) > TOLERANCE).any(axis=1).mean() >= EDGE_SHARE
               for edge, on_border in edges)
    return full >= 2


def _cut(pixels: np.ndarray, box: Box, gap: int, colour: np.ndarray, across: bool, depth: int,
         turned: bool = False) -> list[Box]:
    """The leaf regions of ``box``: cut along its gutters (rows when ``across``), then the other way."""
    parts = _split(pixels, box, gap, colour, across)
    if not parts:
        return []
    if len(parts) > 1 and depth < MAX_DEPTH:
        return [leaf for part in parts for leaf in _cut(pixels, part, gap, colour, not across, depth + 1)]
    if turned or depth >= MAX_DEPTH:
        return parts
    return _cut(pixels, parts[0], gap, colour, not across, depth, turned=True)


def _split(pixels: np.ndarray, box: Box, gap: int, colour: np.ndarray, across: bool) -> list[Box]:
    """``box`` cut at every gutter at least ``gap`` wide (rows when ``across``, else columns)."""
    left, top, right, bottom = box
    region = pixels[top:bottom, left:right]
    content = np.flatnonzero(~_gutter_lines(region if across else region.transpose(1, 0, 2), colour))
    if not len(content):
        return []
    breaks = np.flatnonzero(np.diff(content) > gap)
    starts = [content[0], *content[breaks + 1]]
    ends = [*content[breaks] + 1, content[-1] + 1]
    if across:
        return [(left, top + int(a), right, top + int(b)) for a, b in zip(starts, ends)]
    return [(left + int(a), top, left + int(b), bottom) for a, b in zip(starts, ends)]


def _gutter_lines(region: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """For each row of ``region`` (H x W x 3): whether it is all of the gutter colour."""
    close = (np.abs(region - colour) <= TOLERANCE).all(axis=2)
    return close.mean(axis=1) >= GUTTER_SHARE
