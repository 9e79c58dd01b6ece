"""What makes a dataset folder loadable and documented: imagefolder metadata and the dataset card.

``write_metadata`` writes the Hugging Face imagefolder metadata (``metadata.jsonl`` with a
``file_name`` per image) into each split folder, or the dataset folder without splits, from the
manifest: one line per image file of the medical and non-medical folders, with the kept image's
row (its label after review, modality, caption, alt, licence, where it was found). ``write_card``
writes ``README.md``: the YAML header the Hub and ``datasets`` read (licence, task, size, the
splits' files) and the counts, sources, model and settings a reader needs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from medcrawl.dedupe import GROUPS_FILE
from medcrawl.files import TMP_PREFIX
from medcrawl.labels import MEDICAL, NON_MEDICAL

METADATA = "metadata.jsonl"
# The files a dataset folder keeps about its images (any other file is an image).
FOLDER_FILES = frozenset({"manifest.csv", "corrections.csv", GROUPS_FILE, "README.md", METADATA})
TEXT_COLUMNS = ("label", "modality", "caption", "alt", "title", "page_title", "license", "license_url",
                "source_url", "image_url", "sha256")
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                   (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"))


@dataclass(frozen=True)
class BuildInfo:
    """How a dataset was built: the crawl's model and dataset settings, for its card."""

    model: str
    threshold: float
    min_confidence: float
    dedupe: str = "near"
    splits: tuple[tuple[str, float], ...] = ()
    licenses: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    split_panels: bool = False


def in_split(row: dict) -> str:
    """A manifest row's file below its split folder (the file itself without a split)."""
    split, file = row.get("split") or "", row["file"]
    return file[len(split) + 1:] if split and file.startswith(f"{split}/") else file


def dataset_images(rows: list[dict]) -> list[dict]:
    """One row per image file in a medical or non-medical folder: the kept content's own row."""
    chosen: dict[str, dict] = {}
    for row in rows:
        if in_split(row).split("/", 1)[0] not in (MEDICAL, NON_MEDICAL):
            continue
        own = Path(row["file"]).stem == row["sha256"]
        if row["file"] not in chosen or (own and Path(row["file"]).stem != chosen[row["file"]]["sha256"]):
            chosen[row["file"]] = row
    return list(chosen.values())


def metadata_line(row: dict) -> dict:
    """An image's imagefolder metadata: ``file_name`` below its split folder, then its columns
    (one type per column, so every split's file has the same features)."""
    line = {"file_name": in_split(row), **{k: row.get(k) or "" for k in TEXT_COLUMNS}}
    line.update(width=int(row.get("width") or 0), height=int(row.get("height") or 0),
                compound=str(row.get("compound")).lower() == "true", panel=int(row.get("panel") or 0))
    return line


def write_metadata(root: str | os.PathLike, rows: list[dict]) -> dict[str, int]:
    """Write each split's (or the folder's) metadata.jsonl from the manifest's rows; returns
    images per split ('' : none)."""
    root = Path(root)
    by_split: dict[str, list[dict]] = {}
    for row in dataset_images(rows):
        by_split.setdefault(row.get("split") or "", []).append(metadata_line(row))
    for split, lines in by_split.items():
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        _write_atomically(root / split / METADATA, text)
    return {split: len(lines) for split, lines in by_split.items()}


def write_card(root: str | os.PathLike, build: BuildInfo, rows: list[dict]) -> Path:
    """Write DIR/README.md, the dataset card, from the manifest's rows."""
    root = Path(root)
    images = dataset_images(rows)
    text = "---\n" + card_header(images, build) + "---\n\n" + card_body(root, images, rows, build)
    _write_atomically(root / "README.md", text)
    return root / "README.md"


def card_header(images: list[dict], build: BuildInfo) -> str:
    """The card's YAML header (written by hand: a fixed, small shape)."""
    licenses = sorted({(r.get("license") or "unknown").lower() for r in images}) or ["unknown"]
    size = next((name for limit, name in SIZE_CATEGORIES if len(images) < limit), "n>10M")
    lines = ["license:" + (f" {licenses[0]}" if len(licenses) == 1 else "")]
    lines += [f"- {name}" for name in licenses if len(licenses) > 1]
    lines += ["task_categories:", "- image-classification", "tags:", "- medical", "- medcrawl",
              "size_categories:", f"- {size}"]
    splits = sorted({r.get("split") or "" for r in images} - {""})
    if splits:
        lines += ["configs:", "- config_name: default", "  data_files:"]
        for split in splits:
            lines += [f"  - split: {split}", f'    path: "{split}/**"']
    return "\n".join(lines) + "\n"


def card_body(root: Path, images: list[dict], rows: list[dict], build: BuildInfo) -> str:
    sites = Counter(_site(r) for r in rows)
    duplicates = sum(1 for r in rows if r.get("duplicate_of"))
    parts = [
        f"# {root.name}\n",
        f"{len(images)} images labelled medical or non-medical by the {build.model} model, harvested "
        f"with medcrawl from {len(sites)} site(s). Each image comes with the page or PDF it was found on, "
        "its caption, alt text and declared licence.\n",
        "## Loading\n",
        "```python\nimport datasets\n"
        f'ds = datasets.load_dataset("imagefolder", data_dir="{root.name}")\n```\n',
        "Columns: `image`, `label`, `modality`, `caption`, `alt`, `title`, `page_title`, `license`, "
        "`license_url`, `source_url`, `image_url`, `sha256`, `width`, `height`, `compound`, `panel` "
        "(1..N for a panel cut from a compound figure, else 0).\n",
        "## Contents\n",
        _table("Split", Counter(r.get("split") or "(none)" for r in images)),
        _table("Label", Counter(r["label"] for r in images)),
        _table("Modality", Counter(r["modality"] for r in images if r["label"] == MEDICAL)),
        _table("Licence", Counter(r.get("license") or "(none declared)" for r in images)),
        _table("Site", Counter(_site(r) for r in images)),
        "## How it was built\n",
        f"- Model: {build.model}, medical when the probability is at least {build.threshold:g}; an image "
        f"enters a label folder when labelled at least {build.min_confidence:g} confidently (else `uncertain/`, "
        "outside the splits); a reviewer's correction (`corrections.csv`) overrides the model.",
        f"- Near-duplicates: `{build.dedupe}`"
        + {"near": " (the same picture at another size or compression: one image per group, the largest; "
                   f"{duplicates} manifest rows name the kept image in `duplicate_of`)",
           "exact": " (identical files only)", "off": " (none removed)"}.get(build.dedupe, ""),
        "- Splits: " + (", ".join(f"{n} {s:g}" for n, s in build.splits) + " of the source documents "
                        "(a page or a PDF goes to one split by the hash of its URL; a near-duplicate group "
                        "stays in the split of its first document)" if build.splits else "none"),
        "- Licences admitted: " + (", ".join(build.licenses) if build.licenses
                                   else "any (including none declared)"),
        "- Modalities admitted: " + (", ".join(build.modalities) if build.modalities else "all"),
        "- Compound figures: " + ("each panel is an image of its own (`panel` > 0) besides the figure"
                                  if build.split_panels else "kept whole (`compound` says which)"),
        "- `manifest.csv` lists every place each image was found; `near-duplicates.csv` the groups.\n",
        "## Known limits\n",
        "- Labels and modalities come from a model and are wrong for some images: review before training "
        "(`medcrawl ui --review DIR`).",
        "- A licence is what the page or PDF declares (empty when it declares none); it is not checked "
        "against the image's actual rights holder.",
        "- Compound figures are found by the gutters between panels; panels that touch, or labels "
        "printed across a gutter, hide a compound figure.",
        "- Captions are the text next to the image on its page; they may describe a whole figure for "
        "each of its panels.",
        "",
    ]
    return "\n".join(parts)


def _site(row: dict) -> str:
    return urlsplit(row["source_url"]).netloc or row["source_url"]


def _table(title: str, counts: Counter) -> str:
    lines = [f"| {title} | Images |", "|---|---|"]
    lines += [f"| {name or '(none)'} | {count} |" for name, count in sorted(counts.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
