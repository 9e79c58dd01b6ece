"""Contact sheets: up to 64 of a source's images as 96-px thumbnails under a title with its counts."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

THUMB = 96
COLUMNS = 8
COUNT = 64
TITLE_HEIGHT = 44
GAP = 2


def spread(items: list, count: int = COUNT) -> list:
    """``count`` items evenly spread over the list (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def contact_sheet(files: list[Path], title: str, subtitle: str, out: Path) -> None:
    """Write a PNG of the images (evenly spread over ``files``) under a two-line title."""
    chosen = spread(files)
    rows = max(1, -(-len(chosen) // COLUMNS))
    width = COLUMNS * (THUMB + GAP) + GAP
    sheet = Image.new("RGB", (width, TITLE_HEIGHT + rows * (THUMB + GAP) + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    draw.text((GAP + 2, 4), title, fill="black", font=font)
    draw.text((GAP + 2, 24), subtitle, fill=(70, 70, 70), font=font)
    for number, path in enumerate(chosen):
        x = GAP + (number % COLUMNS) * (THUMB + GAP)
        y = TITLE_HEIGHT + (number // COLUMNS) * (THUMB + GAP)
        sheet.paste(thumbnail(path), (x, y))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")


def thumbnail(path: Path) -> Image.Image:
    """The image fitted into THUMB x THUMB on light grey (a red tile when it cannot be read)."""
    tile = Image.new("RGB", (THUMB, THUMB), (225, 225, 225))
    try:
        with Image.open(path) as img:
            img.thumbnail((THUMB, THUMB))
            img = img.convert("RGB")
    except Exception:  # noqa: BLE001 - the sheet shows the failure instead of stopping
        return Image.new("RGB", (THUMB, THUMB), (200, 0, 0))
    tile.paste(img, ((THUMB - img.width) // 2, (THUMB - img.height) // 2))
    return tile
