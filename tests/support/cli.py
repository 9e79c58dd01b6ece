"""`medcrawl classify` run in-process, its JSON-lines rows parsed."""

from __future__ import annotations

import json

from medcrawl.oneoff.cli import main


def classify(capsys, *args) -> tuple[int, list[dict], str]:
    """Run `medcrawl classify ARGS --format jsonl` in-process; (exit code, rows, stderr)."""
    code = main(["classify", "--format", "jsonl", "-q", *map(str, args)])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err
