"""Model-only throughput of the shipped engines (Keras, LiteRT) at one batch size, sizes, load times.

Both engines are loaded through ``Classifier.load(engine=...)`` and fed the same uint8 batches;
rounds alternate the engines. The Keras engine is the baseline of the ratio.
"""

from __future__ import annotations

import sys

import numpy as np

from bench import common
from bench.common import Figure

ENGINES = ("keras", "litert")
# End to end, `medcrawl classify` must reach 0.45x the one-thread decode+resize floor (about 90-100
# images/s on the 2-core machine); decode and inference share the cores, so the model alone needs
# about twice that.
TARGET_RATE = 200.0
TARGET_FILE_MB = 30.0          # each committed model file


def throughput(clf, batch: np.ndarray, calls: int) -> float:
    """Images/s over ``calls`` predict calls on one batch."""
    seconds, _ = common.timed(lambda: [clf.predict(batch) for _ in range(calls)])
    return calls * len(batch) / seconds


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32, help="images per call (default %(default)s)")
    args = p.parse_args(argv)
    rounds = common.rounds(args, full=5, quick=1)
    calls = 2 if args.quick else 12
    import_s, _ = common.timed(_import_engines)
    from medcrawl.config import model_location
    from medcrawl.model.classifier import Classifier
    loads: dict[str, list[float]] = {e: [] for e in ENGINES}
    clfs = {}
    for _ in range(1 if args.quick else 3):
        for engine in ENGINES:
            seconds, clfs[engine] = common.timed(Classifier.load, model_location(args.model)[0], engine=engine)
            loads[engine].append(seconds)
    default = clfs["litert"].meta.get("engine", "keras")
    size = clfs["litert"].input_size
    batch = np.random.default_rng(0).integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8)
    for clf in clfs.values():                            # warm-up: graph tracing, tensor allocation
        clf.predict(batch)
    rates: dict[str, list[float]] = {e: [] for e in ENGINES}
    for r in range(rounds):
        for engine in (ENGINES if r % 2 == 0 else ENGINES[::-1]):
            rates[engine].append(throughput(clfs[engine], batch, calls))
    figures = [Figure(f"{e} rate b{args.batch}", common.median(rates[e]), "images/s",
                      TARGET_RATE if e == default else None,
                      note="the model's default engine" if e == default else "")
               for e in ENGINES]
    figures += [Figure("litert / keras", common.rate_ratio(rates, "litert", "keras"), "x")]
    for e in ENGINES:
        path = clfs[e].model_dir / clfs[e].meta["files"][e]
        figures += [Figure(f"{e} file size", path.stat().st_size / 1e6, "MB", TARGET_FILE_MB,
                           higher_is_better=False),
                    Figure(f"{e} load time", common.median(loads[e]), "s", note="verified, warm")]
    figures += [Figure("engine import time", import_s, "s", note="tensorflow + ai_edge_litert, once")]
    return common.report(f"model only, batch {args.batch} ({size}px input)", figures, args,
                         {"model": clfs["litert"].name, "input_size": size})


def _import_engines() -> None:
    import ai_edge_litert.interpreter  # noqa: F401
    import keras  # noqa: F401
    import tensorflow  # noqa: F401


if __name__ == "__main__":
    sys.exit(main())
