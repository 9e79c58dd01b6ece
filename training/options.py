"""Compare training options on held-out sources and write the table the model card quotes.

    python -m training.options --data DIR [--data DIR ...] [--manifest CSV] --work runs \
        [--max-per-source 150] --option "lite0 128" --option "lite2 224 --hidden 256" ... --out FILE.md

Each option is ``BACKBONE SIZE [extra training.train arguments]``, run with ``--no-export``
and 6 groups of held-out sources (later arguments win), so only cached features and held-out folds are computed.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from training import train

# Sources the card follows one by one: the look-alikes and the modalities they pull over.
WATCH = ("em-lucchi", "fetal-us", "us-pcos", "ihc-ki67", "rock-thinsection", "sem-materials",
         "mars-hirise", "xray-castings", "photos-historic", "books-scanned")


def run_option(option: str, args) -> dict:
    """Held-out figures of one option (cached: a rerun only reads the saved folds)."""
    backbone, size, *extra = shlex.split(option)
    slug = "-".join([backbone.replace("+", "_"), size, *[e.lstrip("-") for e in extra]])
    slug += f"-n{args.max_per_source}" if args.max_per_source else ""
    out = args.work / "options" / slug
    argv = [a for d in args.data for a in ("--data", d)] + [a for m in args.manifest for a in ("--manifest", m)]
    argv += ["--max-per-source", str(args.max_per_source), "--out", str(out), "--work", str(args.work), "--backbone", backbone, "--size", size,
             "--no-export", "--name", slug, "--folds", "6", "--modality-folds", "6"] + extra
    meta = train.main(argv)
    per_source = json.loads((out / "evaluation" / "heldout_metrics.json").read_text())["per_source"]
    return {"option": option, "meta": meta, "sources": {r["source"]: r for r in per_source}}


def table(results: list[dict]) -> str:
    """One row per option: headline metrics, sources of >= 50 images under 0.90, watched sources."""
    head = ["option", "bal. acc", "ROC AUC", "ECE", "sources<0.90", "folder purity/recall @ min conf",
            "modality acc", *WATCH]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        m, s = r["meta"], r["sources"]
        low = sum(1 for v in s.values() if v["images"] >= 50 and v["accuracy"] < 0.9)
        folder = m["dataset_folder"]
        cells = [r["option"], f"{m['heldout']['balanced_accuracy']:.4f}", f"{m['heldout']['roc_auc']:.4f}",
                 f"{m['heldout']['ece']:.4f}", str(low),
                 f"{folder['purity']:.4f}/{folder['recall']:.3f} @ {m['dataset_min_confidence']:.2f}",
                 f"{m.get('modality_heldout', {}).get('accuracy', float('nan')):.4f}"]
        cells += [f"{s[w]['accuracy']:.2f}" if w in s else "-" for w in WATCH]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--manifest", action="append", default=[])
    p.add_argument("--work", type=Path, default=Path("runs"))
    p.add_argument("--max-per-source", type=int, default=0, help="compare on a sample of each source")
    p.add_argument("--option", action="append", required=True, help='e.g. "lite0 224 --hidden 256"')
    p.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    args = p.parse_args(argv)
    results = []
    for option in args.option:
        results.append(run_option(option, args))
        args.out.write_text(table(results))
    print(table(results))


if __name__ == "__main__":
    main()
