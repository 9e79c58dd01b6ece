"""Captions medcrawl gives the images of real PDFs, for checking by hand.

    python scripts/pdf_captions.py PDF_OR_DIR... --out captions.tsv [--pages DIR]

Writes one line per distinct embedded image (file, page, xref, size, caption) to a TSV with an
empty ``verdict`` column; ``--pages`` also renders each page that has images, the image outlined
in red and its caption's text found again in green, to judge each caption against the page. Fill
``verdict`` with ``right`` / ``wrong`` (a caption given) or ``missed`` / ``none`` (no caption: the
image has a caption on the page, or has none), then ``--score captions.tsv`` prints the precision
(right / captions given) and how many figure images got their caption.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

import pymupdf

from medcrawl.extract.pdf import extract_pdf_images

COLUMNS = ("file", "page", "xref", "width", "height", "caption", "verdict")


def pdfs(inputs: list[str]) -> list[Path]:
    out = []
    for text in inputs:
        path = Path(text)
        out.extend(sorted(path.rglob("*.pdf")) if path.is_dir() else [path])
    return out


def rows(path: Path) -> list[dict]:
    try:
        images = extract_pdf_images(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - a PDF that cannot be read is reported and skipped
        print(f"skip {path}: {exc}", file=sys.stderr)
        return []
    return [{"file": str(path), "page": i.page, "xref": i.xref, "width": i.width, "height": i.height,
             "caption": i.caption, "verdict": ""} for i in images]


def render(found: list[dict], out: Path) -> None:
    """One PNG per page with images: image rectangles red, caption text green."""
    out.mkdir(parents=True, exist_ok=True)
    by_page: dict[tuple[str, int], list[dict]] = {}
    for row in found:
        by_page.setdefault((row["file"], row["page"]), []).append(row)
    for (file, page_no), page_rows in by_page.items():
        doc = pymupdf.open(file)
        page = doc[page_no - 1]
        for row in page_rows:
            for rect in page.get_image_rects(row["xref"]):
                page.draw_rect(rect, color=(1, 0, 0), width=2)
            for rect in page.search_for(row["caption"][:40]) if row["caption"] else []:
                page.draw_rect(rect, color=(0, 0.7, 0), width=2)
        page.get_pixmap(dpi=50).save(out / f"{Path(file).stem}-p{page_no}.png")
        doc.close()


def score(tsv: Path) -> None:
    checked = list(csv.DictReader(tsv.open(encoding="utf-8"), delimiter="\t"))
    verdicts = Counter(row["verdict"] for row in checked)
    given = verdicts["right"] + verdicts["wrong"]
    figures = given + verdicts["missed"]
    distinct = len({row["caption"] for row in checked if row["verdict"] == "right"})
    print(f"{len(checked)} images in {len({r['file'] for r in checked})} PDFs; unchecked: {verdicts['']}")
    print(f"captions given: {given}; right: {verdicts['right']} ({distinct} distinct texts); "
          f"wrong: {verdicts['wrong']}; precision: {verdicts['right'] / max(1, given):.1%}")
    print(f"figure images (right + wrong + missed): {figures}; given their caption: {verdicts['right']} "
          f"({verdicts['right'] / max(1, figures):.1%}); images without a caption (logos, covers, "
          f"icons): {verdicts['none']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--pages", type=Path)
    parser.add_argument("--score", type=Path)
    args = parser.parse_args(argv)
    if args.score:
        return score(args.score)
    found = [row for path in pdfs(args.inputs) for row in rows(path)]
    with args.out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS, delimiter="\t")
        writer.writeheader()
        writer.writerows(found)
    if args.pages:
        render(found, args.pages)
    print(f"{len(found)} images, {sum(1 for r in found if r['caption'])} with a caption -> {args.out}")


if __name__ == "__main__":
    main()
