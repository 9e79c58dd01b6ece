"""Precision and recall of compound-figure detection (medcrawl.model.panels) on hand-labelled figures.

``training/panel_labels.csv`` names each figure by its sha256 with its label (compound or not) and
where it came from: an image embedded in a PDF of Debian's TeX Live documentation packages
(``/usr/share/doc/texlive-doc/...``, the PDF's path with ``/`` as ``_``, its page and xref), or a
PubMed Central figure kept in a public GitHub repository. Put the figures in folders (any names;
they are matched by content) and run::

    python -m training.measure_panels FOLDER [FOLDER ...]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from pathlib import Path

from PIL import Image

from medcrawl.model.panels import find_panels, is_compound

LABELS = Path(__file__).resolve().parent / "panel_labels.csv"


def labelled(folders: list[Path]) -> list[tuple[Path, bool, str]]:
    """(file, compound, origin) of every labelled figure found in the folders."""
    with open(LABELS, newline="", encoding="utf-8") as fh:
        labels = {r["sha256"]: (r["compound"] == "true", r["where"]) for r in csv.DictReader(fh)}
    found = {}
    for path in (p for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()):
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        if sha in labels and sha not in found:
            found[sha] = (path, *labels[sha])
    return list(found.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    figures = labelled(args.folders)
    for path, truth, where in figures:
        with Image.open(path) as image:
            found = is_compound(find_panels(image.convert("RGB")))
        counts[("t" if found == truth else "f") + ("p" if found else "n")] += 1
        if found != truth:
            print(f"{'missed' if truth else 'false alarm'}: {where}")
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    print(f"{len(figures)} figures ({tp + fn} compound): " + ", ".join(f"{k}={v}" for k, v in counts.items())
          + f"; precision {tp / max(tp + fp, 1):.2f}, recall {tp / max(tp + fn, 1):.2f}")


if __name__ == "__main__":
    main()
