"""Dataset splits: a source document (a page, a PDF) goes to one split, the same one every time.

``MEDCRAWL_DATASET_SPLITS=train:0.8,validation:0.1,test:0.1`` names the splits and their shares;
a document's split comes from the SHA-256 of its URL (so every image of a document, in any run,
on any worker, lands in the same split, and the shares hold over many documents).
"""

from __future__ import annotations

import hashlib
import re

Splits = tuple[tuple[str, float], ...]
NAME = re.compile(r"[a-z][a-z0-9_-]*")


def parse_splits(values: list[str] | tuple[str, ...]) -> Splits:
    """``["train:0.8", "test:0.2"]`` -> ``(("train", 0.8), ("test", 0.2))``; ValueError saying why not."""
    splits = []
    for value in (v.strip() for v in values if v.strip()):
        name, _, share = value.partition(":")
        name = name.strip().lower()
        try:
            number = float(share)
        except ValueError:
            raise ValueError(f"{value!r} is not name:share (e.g. train:0.8)") from None
        if not NAME.fullmatch(name) or not 0 < number <= 1:
            raise ValueError(f"{value!r}: a split is a lower-case name and a share in (0, 1]")
        splits.append((name, number))
    names = [name for name, _ in splits]
    if len(set(names)) != len(names):
        raise ValueError(f"a split is named twice in {', '.join(names)}")
    if splits and abs(sum(share for _, share in splits) - 1) > 1e-6:
        raise ValueError(f"the shares add up to {sum(s for _, s in splits):g}, not 1")
    return tuple(splits)


def split_for(document_url: str, splits: Splits) -> str:
    """The split of a document ('' without splits): its URL's hash placed on the shares' line."""
    if not splits:
        return ""
    digest = hashlib.sha256(document_url.encode("utf-8")).digest()
    point = int.from_bytes(digest[:8], "big") / 2 ** 64
    total = 0.0
    for name, share in splits:
        total += share
        if point < total:
            return name
    return splits[-1][0]
