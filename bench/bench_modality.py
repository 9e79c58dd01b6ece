"""Cost of the modality head: a two-output model vs the same model cut to its medical output.

Both go through ``Classifier.classify_arrays`` (one model call, then the verdicts) on the same
uint8 batches, rounds alternating; the one-output model is made in this run from the two-output
model's own Keras file (same backbone, same weights), so the ratio is the head's cost alone.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench import common
from bench.common import Figure

TARGET_RATIO = 0.95          # the modality head may cost at most 5 % of the rate


def one_output_copy(clf, out: Path) -> Path:
    """The model in ``clf.model_dir`` with only its ``medical_probability`` output, saved to ``out``."""
    import keras
    from training.export import save_model_dir
    model = keras.saving.load_model(clf.model_dir / clf.meta["files"]["keras"], compile=False)
    one = keras.Model(model.input, model.get_layer("medical_probability").output)
    meta = {k: v for k, v in clf.meta.items()
            if k not in ("modalities", "modality_min_confidence", "files", "sha256", "input_size", "refine")}
    probe = np.random.default_rng(0).integers(0, 256, (2, clf.input_size, clf.input_size, 3), np.uint8)
    save_model_dir(one, out, meta, probe)
    return out


def rate(clf, arrays: list[np.ndarray], calls: int) -> float:
    """Images/s of ``classify_arrays`` over ``calls`` calls."""
    seconds, _ = common.timed(lambda: [clf.classify_arrays(arrays) for _ in range(calls)])
    return calls * len(arrays) / seconds


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32, help="images per call (default %(default)s)")
    p.add_argument("--engine", choices=("litert", "keras"), help="default: the model's own")
    args = p.parse_args(argv)
    from medcrawl.config import model_location
    from medcrawl.model.classifier import Classifier
    two = Classifier.load(*model_location(args.model, args.engine))
    if not two.modalities:
        print(f"{two.name} has no modality head: nothing to compare", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        one = Classifier.load(one_output_copy(two, Path(tmp) / "one"), two.engine)
        size = two.input_size
        rng = np.random.default_rng(0)
        arrays = list(rng.integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8))
        for clf in (one, two):                           # warm-up: tracing, tensor allocation
            clf.classify_arrays(arrays)
        rates: dict[str, list[float]] = {"one": [], "two": []}
        calls = 2 if args.quick else 10
        for r in range(common.rounds(args, full=7, quick=1)):
            for name, clf in (("one", one), ("two", two))[:: 1 if r % 2 == 0 else -1]:
                rates[name].append(rate(clf, arrays, calls))
    figures = [Figure("medical output only", common.median(rates["one"]), "images/s", note="baseline"),
               Figure("medical + modality", common.median(rates["two"]), "images/s"),
               Figure("with head / without", common.rate_ratio(rates, "two", "one"), "x", TARGET_RATIO)]
    return common.report(f"modality head cost, batch {args.batch} ({two.engine}, {size}px)", figures, args,
                         {"model": two.name, "modalities": json.dumps(two.modalities)})


if __name__ == "__main__":
    sys.exit(main())
