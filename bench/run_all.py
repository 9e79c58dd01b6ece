"""Run every benchmark in full mode, one after another, and write bench/RESULTS.md."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import common

BENCH = Path(__file__).resolve().parent
SCRIPTS = ("bench_model.py", "bench_classify.py", "bench_modality.py", "bench_pdf.py", "bench_crawl.py",
           "bench_memory.py", "bench_report.py", "bench_medical.py", "bench_image_memory.py")
# Why a target is structurally out of reach, shown next to a miss whose figure name ends so.
KNOWN_MISSES = {
    "litert rate b32": "EfficientNet-Lite2 at 224 px is about 5x the compute of v1's Lite0 at 128 px; "
                       "the model card's Speed section has the options measured (int8 weights ran slower)",
    "medcrawl / plain": "the classifier's Lite2 pass shares the 2 cores with the crawl itself "
                        "(model card, Speed)",
    "/ naive": "with Lite2 the network's own cost dominates both arms, so batching gains less than it "
               "did for v1's small model (one Keras predict per image against batched LiteRT)",
}
TARGETS = {
    "bench_classify.py": "classification end to end >= 0.45x decode+resize alone (one thread), "
                         ">= 15x one keras predict per image",
    "bench_modality.py": "the modality head costs at most 5 % of the classification rate",
    "bench_crawl.py": "full medcrawl crawl >= 0.9x the images/s of a plain ImagesPipeline crawl",
    "bench_memory.py": "crawl peak RSS <= 1 GB, the 10k-image figure within 10% of the 1k figure",
    "bench_pdf.py": "PDF image extraction >= 150 images/s",
    "bench_image_memory.py": "legal-size images (9000x9000) decoded at <= 0.5x the peak RSS of the full-size path",
    "bench_medical.py": "DICOM/NIfTI rendering of real files >= 5 frames/s",
    "bench_model.py": "model only >= 200 images/s at batch 32 (the model's default engine)",
    "bench_report.py": "medcrawl report of a 10,000-row feed >= 1,000 rows/s with no thumbnails made yet",
}


def module(script: str) -> str:
    """``bench_model.py`` -> ``bench.bench_model``, what ``python -m`` runs."""
    return f"bench.{Path(script).stem}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these scripts")
    p.add_argument("--quick", action="store_true", help="quick modes (smoke test; RESULTS.md untouched)")
    p.add_argument("--out", default=str(BENCH / "RESULTS.md"), help="results file (default %(default)s)")
    p.add_argument("--from-json", metavar="FILE", help="re-render RESULTS.md from a saved results.json")
    args = p.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        Path(args.out).write_text(render(saved["results"], saved["before"], saved["after"]))
        return 0
    before, results = common.machine(), []
    with tempfile.TemporaryDirectory() as tmp:
        for script in args.only or SCRIPTS:
            out = Path(tmp) / f"{script}.json"
            cmd = [sys.executable, "-m", module(script), "--json", str(out)] + (["--quick"] if args.quick else [])
            print(f"$ python -m {module(script)}{' --quick' if args.quick else ''}", flush=True)
            seconds, proc = common.timed(subprocess.run, cmd, text=True, capture_output=True, cwd=BENCH.parent)
            print(proc.stdout, flush=True)
            if proc.returncode != 0 or not out.exists():
                print(proc.stderr[-3000:], file=sys.stderr)
                results.append({"script": script, "error": f"exit {proc.returncode}", "seconds": seconds})
                continue
            results.append({"script": script, "seconds": seconds, **json.loads(out.read_text())})
    if not args.quick:
        after = common.machine()
        Path(args.out).write_text(render(results, before, after))
        Path(args.out).with_name("results.json").write_text(
            json.dumps({"before": before, "after": after, "results": results}, indent=1) + "\n")
        print(f"wrote {args.out} and results.json")
    return 0 if all("error" not in r for r in results) else 1


def render(results: list[dict], before: dict, after: dict) -> str:
    """RESULTS.md: machine, load, commands, and every figure against its target."""
    lines = ["# Benchmark results", "",
             f"Measured {before['date']} with `python -m bench.run_all` (each script also runs alone: "
             "`python -m bench.<script> [--quick] [--check] [--json FILE]`).", "",
             f"Machine: {before['nproc']} x {before['cpu']}, {before['ram_gb']} GB RAM, no GPU, "
             f"Python {before['python']}. Load average (1/5/15 min) before: {before['load']}, "
             f"after: {after['load']}.", "",
             "Figures are medians over rounds in which the arms alternate; ratios are medians of "
             "per-round ratios, so they hold even when the machine is shared. How each figure is "
             "measured, and the product changes the profiles led to: docs/bench.md.", ""]
    busy = [r["script"] for r in results if "machine" in r
            and float(r["machine"]["load"].split()[0]) > before["nproc"]]
    if busy:
        lines += [f"**The machine was shared** (other jobs: 1-minute load above {before['nproc']} at "
                  f"the end of {', '.join(busy)}): absolute rates there are low; the same-run ratios "
                  "are the figures to compare.", ""]
    lines += ["| benchmark | figure | value | unit | target | met |", "|---|---|---|---|---|---|"]
    for r in results:
        for f in r.get("figures", []):
            met = {None: "", True: "yes", False: "**no**"}[f["met"]]
            target = "" if f["target"] is None else f"{'>=' if f['higher_is_better'] else '<='} {common.fmt(f['target'])}"
            note = f" ({f['note']})" if f.get("note") else ""
            lines.append(f"| {r['script']} | {f['name']}{note} | {common.fmt(f['value'])} | {f['unit']} | {target} | {met} |")
    misses = [(r["script"], f) for r in results for f in r.get("figures", []) if f["met"] is False]
    lines += ["", "## Missed targets", ""]
    lines += [f"- {script}: {f['name']} = {common.fmt(f['value'])} {f['unit']} (target "
              f"{'>=' if f['higher_is_better'] else '<='} {common.fmt(f['target'])})"
              + "".join(f": {why}" for key, why in KNOWN_MISSES.items() if f["name"].endswith(key))
              for script, f in misses] or ["None."]
    lines += ["", "## Per benchmark", ""]
    for r in results:
        lines += [f"### {r['script']}", "", f"Target: {TARGETS[r['script']]}.", ""]
        if "error" in r:
            lines += [f"Failed: {r['error']}.", ""]
            continue
        extra = {k: v for k, v in r.items() if k not in ("figures", "machine", "argv", "script", "quick")}
        lines += [f"- {r['title']}; ran {r['seconds']:.0f} s; load at the end {r['machine']['load']}",
                  f"- command: `python -m {module(r['script'])}`"]
        for k, v in extra.items():
            if k == "commands":
                lines += [f"- {arm} arm: `{cmd}`" for arm, cmd in v.items()]
            elif k not in ("title", "seconds"):
                lines.append(f"- {k}: `{json.dumps(v) if not isinstance(v, str) else v}`")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
