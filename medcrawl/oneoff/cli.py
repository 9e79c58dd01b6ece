"""The ``medcrawl`` command: classify one-off inputs, serve the web page, run the demo."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import re
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from medcrawl import __version__
from medcrawl.config import DEFAULT_MODEL_DIR, Config, LoadedModel, MedicalConfig, unknown_modalities
from medcrawl.labels import MEDICAL, MODALITIES, OTHER_MODALITY
from medcrawl.model.classifier import ENGINES, Classifier, ModelError
from medcrawl.oneoff.fetch import FetchLimits

EXIT_OK, EXIT_FATAL, EXIT_UNREADABLE = 0, 1, 2
SIZE_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3}
logger = logging.getLogger("medcrawl")


def parse_size(text: str) -> int:
    """'50MB', '512kb' or '1048576' -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?b?)\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 50MB, 512KB or a byte count)")
    return int(float(match[1]) * SIZE_UNITS[match[2] if match[2] in SIZE_UNITS else match[2] + "b"])


def probability(text: str) -> float:
    """A float in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def dicom_frames(text: str) -> str:
    """middle, all, or a frame count >= 1 (as MEDCRAWL_DICOM_FRAMES)."""
    try:
        return MedicalConfig.frames_choice(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def modality_list(text: str) -> tuple[str, ...]:
    """'ct,mri' -> ('ct', 'mri'), every name a modality a row can have."""
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    if not names or unknown_modalities(names):
        raise argparse.ArgumentTypeError(f"unknown modality in {text!r}; choose from "
                                         f"{', '.join(MODALITIES + (OTHER_MODALITY,))}")
    return names


def common_options() -> argparse.ArgumentParser:
    """Options shared by `classify` and `ui`: model, decoding, fetching limits."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="DIR", help="model directory (default: $MEDCRAWL_MODEL or "
                   f"models/{DEFAULT_MODEL_DIR.name})")
    g.add_argument("--engine", choices=ENGINES, help="inference engine (default: the model's own)")
    g.add_argument("--batch-size", type=positive_int, default=Config.batch_size, metavar="N",
                   help="images per model call (default: %(default)s)")
    g.add_argument("--min-size", type=int, default=Config.min_size, metavar="PX",
                   help="skip images whose shorter side is below PX pixels (default: %(default)s)")
    g.add_argument("--dicom-frames", type=dicom_frames, default=MedicalConfig.dicom_frames,
                   metavar="middle|all|N", help="frames of a multi-frame DICOM file that become "
                   "rows: the middle one, all, or N spread evenly (default: %(default)s)")
    g = p.add_argument_group("fetching")
    g.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                   help="time limit for each URL fetch, redirects included (default: %(default)s)")
    g.add_argument("--max-bytes", type=parse_size, default="100MB", metavar="SIZE",
                   help="size limit for each file or download, e.g. 20MB (default: 100MB)")
    g.add_argument("--allow-private-urls", action="store_true",
                   help="allow URLs on private, loopback and link-local addresses (refused by "
                   "default so a URL cannot reach internal services)")
    g.add_argument("--allow-network", action="append", default=[], metavar="CIDR",
                   help="allow this address block even without --allow-private-urls (repeatable)")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The full command line: classify, ui, demo."""
    parser = argparse.ArgumentParser(prog="medcrawl", description="Label images medical / "
                                     "non-medical: one-off classification, web page, demo.")
    parser.add_argument("--version", action="version", version=f"medcrawl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = common_options()

    p = sub.add_parser("classify", parents=[common], help="classify images, folders, PDFs, URLs",
                       description="Classify image files, folders (recursive), PDFs (every "
                       "embedded image), image URLs and web pages (the images on the page, no "
                       "further crawling). Exit status: 0 when every input and image was read, 2 "
                       "when some could not be (they appear as error rows), 1 on a fatal error.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image file, directory, PDF file, or http(s) URL of an image, PDF or page")
    g = p.add_argument_group("output")
    g.add_argument("--format", choices=("table", "csv", "jsonl"),
                   help="output format (default: from the -o suffix .csv/.jsonl, else table)")
    g.add_argument("-o", "--output", metavar="FILE", help="write rows to FILE (default: stdout)")
    g.add_argument("--export-medical", metavar="DIR",
                   help="copy images labelled medical into DIR, once each, as SHA256.EXT")
    g.add_argument("--min-confidence", type=probability, metavar="P",
                   help="with --export-medical: only images whose medical probability is at least "
                   "P (default: the model's decision threshold, i.e. every image labelled medical; "
                   "a crawl's dataset folder uses the model's stricter dataset_min_confidence)")
    g.add_argument("--by-modality", action="store_true",
                   help="with --export-medical: sort the images into DIR/MODALITY/ folders")
    g.add_argument("--modality", type=modality_list, metavar="LIST",
                   help="with --export-medical: only images of these modalities, e.g. ct,mri")
    g.add_argument("--max-images", type=positive_int, metavar="N",
                   help="stop after N images in all (default: no limit)")
    g.add_argument("--split-panels", action="store_true",
                   help="also a row for each panel of a compound figure (panel 1..N, the image URL "
                   "with #panel=N), as MEDCRAWL_SPLIT_PANELS does in a crawl")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("ui", parents=[common], help="serve the classification web page",
                       description="Serve a Gradio web page to classify uploads, URLs and PDFs, and "
                       "to review a harvest (Review tab; corrections go to DIR/corrections.csv).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    p.add_argument("--max-file-size", type=parse_size, default="20MB", metavar="SIZE",
                   help="largest upload accepted, per file (default: 20MB)")
    p.add_argument("--max-request-size", type=parse_size, default="100MB", metavar="SIZE",
                   help="largest HTTP request accepted, all its uploads together (default: 100MB)")
    p.add_argument("--max-images", type=positive_int, default=50, metavar="N",
                   help="most images classified per request (default: %(default)s)")
    p.add_argument("--request-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="time budget for the fetches of one request (default: %(default)s)")
    p.add_argument("--concurrency", type=positive_int, default=2, metavar="N",
                   help="requests processed at once; others wait in the queue (default: "
                   "%(default)s)")
    g = p.add_argument_group("Review tab")
    g.add_argument("--review", metavar="PATH", default="",
                   help="harvest opened when the page loads: a dataset folder, or a feed (with --review-store)")
    g.add_argument("--review-store", metavar="DIR", default="", help="the feed's IMAGES_STORE")
    g.add_argument("--review-root", metavar="DIR",
                   help="the Review tab opens harvests under this folder only (default: the folder "
                   "holding --review, else the current one)")
    p.set_defaults(func=cmd_ui)
    add_report_parser(sub)

    # Listed for --help only: main() hands `demo ...` over before parsing (see run_demo).
    sub.add_parser("demo", help="run the demo (arguments go to it; see `medcrawl demo --help`)",
                   add_help=False)
    return parser


def add_report_parser(sub) -> None:
    """`medcrawl report FEED [--store DIR] -o FILE`."""
    p = sub.add_parser("report", help="write an HTML report of a harvest",
                       description="Write one HTML page about a harvest: counts by label, modality, "
                       "site and status, a histogram of the medical probability, the error and skip "
                       "reasons with examples, and thumbnail grids least confident first. Thumbnails "
                       "go to NAME_files/ next to the page, which opens from disk.")
    p.add_argument("feed", metavar="FEED", help="a feed (.csv or .jsonl) or a dataset folder (with manifest.csv)")
    p.add_argument("--store", metavar="DIR", help="the crawl's IMAGES_STORE: a feed's images (its path column)")
    p.add_argument("-o", "--output", default="report.html", metavar="FILE",
                   help="the page to write (default: %(default)s)")
    p.add_argument("--grid-size", type=int, default=200, metavar="N",
                   help="thumbnails per grid, least confident first; 0: all (default: %(default)s)")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="threads making thumbnails (default: the CPUs, at most 8)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_report)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    setup_logging()
    try:
        if argv[:1] == ["demo"]:
            return run_demo(argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        print("medcrawl: interrupted", file=sys.stderr)
        return 130


def setup_logging() -> None:
    """Warnings from medcrawl go to stderr, above any progress bar (levels left as they are)."""
    if not any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        handler = _TqdmHandler(logging.WARNING)
        handler.setFormatter(logging.Formatter("medcrawl: %(message)s"))
        logger.addHandler(handler)


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm
        tqdm.write(self.format(record), file=sys.stderr)


def fetch_limits(args, timeout: float | None = None) -> FetchLimits:
    return FetchLimits(timeout=timeout or args.timeout, max_bytes=args.max_bytes,
                       allow_private=args.allow_private_urls,
                       allowed_networks=tuple(args.allow_network))


def _model_or_exit(args) -> LoadedModel | None:
    try:
        return LoadedModel.load(args.model, args.engine)
    except ModelError as exc:
        print(f"medcrawl: error: cannot load the model: {exc}", file=sys.stderr)
        return None


def cmd_classify(args) -> int:
    """Classify every input and write one row per image."""
    from medcrawl.oneoff.writers import MedicalExport, open_writer
    from medcrawl.oneoff.fetch import Fetcher
    from medcrawl.oneoff.inputs import InputReader, expand, labelled_batches
    model = _model_or_exit(args)
    if model is None:
        return EXIT_FATAL
    classifier = model.classifier
    if not _export_options_ok(args, classifier):
        return EXIT_FATAL
    fmt = args.format or _format_for(args.output)
    # The export takes every image labelled medical unless asked for more confidence.
    min_conf = model.decision_threshold if args.min_confidence is None else args.min_confidence
    reader = InputReader(Fetcher(fetch_limits(args)), max_bytes=args.max_bytes,
                         max_images=args.max_images, medical=medical_options(args))
    sources = expand(args.inputs)
    stats: Counter[str] = Counter()
    with ExitStack() as stack:
        try:
            out = stack.enter_context(open(args.output, "wb")) if args.output else sys.stdout.buffer
            export = MedicalExport(args.export_medical, min_conf, args.by_modality,
                                   args.modality or ()) if args.export_medical else None
            writer = open_writer(fmt, out)
            bar = stack.enter_context(_progress(args, sources))
            for batch in labelled_batches(classifier, reader.items(sources), args.batch_size,
                                          args.min_size, split_panels=args.split_panels):
                for item in batch:
                    if export:
                        export.add(item)
                    item.body = None
                    stats[_outcome(item)] += 1
                    writer.write(item)
                bar.update(len(batch))
            bar.close()                    # before a table is printed on the same terminal
            writer.close()
        except BrokenPipeError:            # e.g. `medcrawl classify ... | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_FATAL
        except OSError as exc:
            print(f"medcrawl: error: cannot write: {exc}", file=sys.stderr)
            return EXIT_FATAL
    return _report(args, stats, reader.truncated, export)


def _export_options_ok(args, classifier: Classifier) -> bool:
    """--by-modality and --modality go with --export-medical and a model with a modality head."""
    wanted = [o for o, on in (("--by-modality", args.by_modality), ("--modality", args.modality)) if on]
    problem = ""
    if wanted and not args.export_medical:
        problem = f"{' and '.join(wanted)} need --export-medical DIR"
    elif wanted and not classifier.modalities:
        problem = f"{' and '.join(wanted)} need a model with a modality head; {classifier.name} has none"
    elif args.modality and set(args.modality) - set(classifier.modalities) - {OTHER_MODALITY}:
        missing = sorted(set(args.modality) - set(classifier.modalities) - {OTHER_MODALITY})
        problem = f"the model {classifier.name} does not name {', '.join(missing)}"
    if problem:
        print(f"medcrawl: error: {problem}", file=sys.stderr)
    return not problem


def _format_for(output: str | None) -> str:
    suffix = Path(output).suffix.lower() if output else ""
    return {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "table")


def medical_options(args):
    """How DICOM/NIfTI inputs are rendered, from the command line."""
    from medcrawl.extract.medical import MedicalOptions
    return MedicalOptions(args.dicom_frames, Config.max_pixels, min_size=args.min_size)


def _outcome(item) -> str:
    if item.status == "ok":
        return item.label
    if item.error in NOT_IMAGES:           # a file or a PDF/page, not an image: counted apart
        return f"{item.error}:{item.source_type}"
    return f"{item.status}:{item.error}"


# Rows for inputs that are not images: files of a type medcrawl cannot read, PDFs and pages without
# images. The summary counts them apart from the images.
NOT_IMAGES = ("unsupported_type", "no_images")


def _progress(args, sources: list[str]):
    from tqdm import tqdm
    from medcrawl.oneoff.inputs import is_url
    known = not any(is_url(s) or s.lower().endswith(".pdf") for s in sources)
    return tqdm(total=len(sources) if known else None, unit="img", file=sys.stderr,
                disable=args.quiet or not sys.stderr.isatty(), leave=False)


def _report(args, stats: Counter, truncated: bool, export) -> int:
    """Summary and error message on stderr; the exit status."""
    errors = {k.split(":", 1)[1]: n for k, n in stats.items() if k.startswith("error:")}
    skipped = sum(n for k, n in stats.items() if k.startswith("skipped:"))
    total = stats[MEDICAL] + stats["non-medical"] + skipped + sum(errors.values())
    if truncated:
        print(f"medcrawl: stopped at --max-images {args.max_images}", file=sys.stderr)
    if not args.quiet:
        line = (f"medcrawl: {total} image{'s' * (total != 1)}: {stats[MEDICAL]} medical, {stats['non-medical']} "
                f"non-medical, {skipped} skipped, {sum(errors.values())} unreadable")
        if export:
            line += f"; {len(export.files)} medical images in {export.directory}"
        print(line + _not_images(stats), file=sys.stderr)
    if errors:
        reasons = ", ".join(f"{k}: {n}" for k, n in sorted(errors.items()))
        print(f"medcrawl: error: {sum(errors.values())} of {total} inputs/images could not be "
              f"read ({reasons}); see the status and error columns", file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_OK


def _not_images(stats: Counter) -> str:
    """'; 2 files of unsupported type, 1 PDF without images' (empty when there are none)."""
    parts = [(sum(n for k, n in stats.items() if k.startswith("unsupported_type:")),
              "file of unsupported type", "files of unsupported type"),
             (stats["no_images:pdf"], "PDF without images", "PDFs without images"),
             (stats["no_images:html"], "page without images", "pages without images")]
    text = ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in parts if n)
    return f"; {text}" if text else ""


def cmd_ui(args) -> int:
    """Serve the web page until interrupted."""
    model = _model_or_exit(args)
    if model is None:
        return EXIT_FATAL
    from medcrawl.oneoff import ui
    settings = ui.UiSettings(
        max_images=args.max_images, max_file_size=args.max_file_size,
        max_request_size=args.max_request_size, batch_size=args.batch_size,
        min_size=args.min_size, request_timeout=args.request_timeout,
        concurrency=args.concurrency, fetch=fetch_limits(args), medical=medical_options(args),
        review=ui.ReviewSettings(Path(args.review_root or Path(args.review).parent if args.review else "."),
                                 args.review, args.review_store))
    ui.serve(model.classifier, settings, host=args.host, port=args.port)
    return EXIT_OK


def cmd_report(args) -> int:
    """Write the HTML report of a feed (with its store) or a dataset folder."""
    from medcrawl.oneoff.harvest import Harvest, HarvestError
    from medcrawl.oneoff.report import write_report
    try:
        harvest = Harvest.open(args.feed, args.store)
        if not harvest.is_dataset and not args.store:
            logger.warning("no --store given: the report has no thumbnails")
        out = write_report(harvest, args.output, args.grid_size, args.workers,
                           progress=not args.quiet and sys.stderr.isatty())
    except (HarvestError, OSError, ValueError) as exc:
        print(f"medcrawl: error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    if not args.quiet:
        print(f"medcrawl: report of {len(harvest.rows)} rows ({len(harvest.images)} images) in {out}",
              file=sys.stderr)
    return EXIT_OK


def run_demo(argv: list[str]) -> int:
    """Hand all arguments over to medcrawl.oneoff.demo.main when that module is installed."""
    if importlib.util.find_spec("medcrawl.oneoff.demo") is None:
        print("medcrawl: error: the demo is not part of this installation", file=sys.stderr)
        return EXIT_FATAL
    result = importlib.import_module("medcrawl.oneoff.demo").main(argv, prog="medcrawl demo")
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
