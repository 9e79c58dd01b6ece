"""Compound (multi-panel) figures: the panels a figure's gutters separate.

A gutter is a run of rows (or columns) of the gutter colour crossing the whole region, such as
the white or black strips between the panels of a journal figure; the colours tried are white,
black and the figure's border colour, and the one giving most panels wins. ``find_panels`` cuts
the figure along its gutters, alternately across and down (an XY cut), down to regions no gutter
crosses; a region is a panel when it is big enough to be a picture of its own (``MIN_PANEL_SIDE``
of the figure's side each way) and picture-like (content along two of its edges: a photo, a
framed plot), not a label, a glyph or a silhouette. A figure with two panels or more, together
covering ``MIN_COVER`` of it, is compound. Works on the decoded RGB copy labelling already has;
boxes come back in the original image's pixels. Measured by ``training/measure_panels.py``.
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
    if min(image.size) < MIN_FIGURE_SIDE:
        return ((0, 0, width, height),)
    gap = max(1, round(MIN_GUTTER * max(image.size)))
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    panels = max((_panels(mask, gap) for mask in _gutter_masks(rgb)), key=len)
    if len(panels) < 2 or _area(panels) < MIN_COVER * image.width * image.height:
        return ((0, 0, width, height),)
    sx, sy = width / image.width, height / image.height
    return tuple((round(left * sx), round(top * sy), round(right * sx), round(bottom * sy))
                 for left, top, right, bottom in panels)


def is_compound(panels: tuple[Box, ...]) -> bool:
    return len(panels) > 1


def _area(boxes: list[Box]) -> int:
    return sum((right - left) * (bottom - top) for left, top, right, bottom in boxes)


def _gutter_masks(image: Image.Image) -> list[np.ndarray]:
    """For each colour gutters may have (white, black, and the figure's border colour when it is
    neither), H x W: whether each pixel is of that colour (within TOLERANCE on every channel)."""
    channels = [np.asarray(band) for band in image.split()]   # planes: numpy is slow across a short axis
    low = np.minimum(np.minimum(channels[0], channels[1]), channels[2])
    high = np.maximum(np.maximum(channels[0], channels[1]), channels[2])
    masks = [low >= 255 - TOLERANCE, high <= TOLERANCE]
    colour = np.median([np.concatenate([c[0], c[-1], c[:, 0], c[:, -1]]) for c in channels], axis=1)
    if TOLERANCE < colour.min() and colour.max() < 255 - TOLERANCE:
        near = [(channel >= value - TOLERANCE) & (channel <= value + TOLERANCE)
                for channel, value in zip(channels, colour.astype(np.uint8))]
        masks.append(near[0] & near[1] & near[2])
    return masks


def _panels(gutter: np.ndarray, gap: int) -> list[Box]:
    """The panels that gutters of one colour (``gutter``: the pixels of that colour) separate."""
    height, width = gutter.shape
    smallest = (MIN_PANEL_SIDE * width, MIN_PANEL_SIDE * height)
    return [box for box in _cut(gutter, (0, 0, width, height), gap, smallest, across=True, depth=0)
            if _picture_like(gutter, box)]


def _big_enough(box: Box, smallest: tuple[float, float]) -> bool:
    left, top, right, bottom = box
    return right - left >= smallest[0] and bottom - top >= smallest[1]


def _picture_like(gutter: np.ndarray, box: Box) -> bool:
    """A rectangle of picture (a photo, a framed plot), not a glyph or a silhouette: content runs
    along at least two of its edges (an edge on the figure's border counts)."""
    left, top, right, bottom = box
    height, width = gutter.shape
    edges = ((gutter[top, left:right], top == 0), (gutter[bottom - 1, left:right], bottom == height),
             (gutter[top:bottom, left], left == 0), (gutter[top:bottom, right - 1], right == width))
    return sum(on_border or 1 - edge.mean() >= EDGE_SHARE for edge, on_border in edges) >= 2


def _cut(gutter: np.ndarray, box: Box, gap: int, smallest: tuple[float, float], across: bool, depth: int,
         turned: bool = False) -> list[Box]:
    """The leaf regions of ``box`` at least ``smallest`` big: cut along its gutters (rows when
    ``across``), then the other way (pieces too small to be a panel are dropped on the way)."""
    parts = [part for part in _split(gutter, box, gap, across) if _big_enough(part, smallest)]
    if len(parts) > 1 and depth < MAX_DEPTH:
        return [leaf for part in parts for leaf in _cut(gutter, part, gap, smallest, not across, depth + 1)]
    if turned or depth >= MAX_DEPTH or not parts:
        return parts
    return _cut(gutter, parts[0], gap, smallest, not across, depth, turned=True)


def _split(gutter: np.ndarray, box: Box, gap: int, across: bool) -> list[Box]:
    """``box`` cut at every gutter at least ``gap`` wide (rows when ``across``, else columns), its
    margins trimmed; [] when it is all gutter."""
    left, top, right, bottom = box
    share = gutter[top:bottom, left:right].mean(axis=1 if across else 0)
    content = np.flatnonzero(share < GUTTER_SHARE)
    if not len(content):
        return []
    breaks = np.flatnonzero(np.diff(content) > gap)
    starts = [content[0], *content[breaks + 1]]
    ends = [*content[breaks] + 1, content[-1] + 1]
    if across:
        return [(left, top + int(a), right, top + int(b)) for a, b in zip(starts, ends)]
    return [(left + int(a), top, left + int(b), bottom) for a, b in zip(starts, ends)]
