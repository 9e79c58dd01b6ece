"""Duplicates across every source: the same stored bytes, the same original file, or the same picture.

The first image seen keeps its place; a later one that repeats it is a duplicate of that image's
source. Near duplicates are the product's ``NearDuplicateIndex`` (perceptual hash, pixels confirm).
"""

from __future__ import annotations

import numpy as np

from medcrawl.nearduplicates import THUMB, Fingerprint, NearDuplicateIndex


class Dedupe:
    """Everything kept so far; ``judge`` keeps a new image or names the source it repeats."""

    def __init__(self) -> None:
        self.stored: dict[str, str] = {}      # sha256 of stored bytes -> source
        self.original: dict[str, str] = {}    # sha256 of the original file -> source
        self.near: NearDuplicateIndex[tuple[str, str]] = NearDuplicateIndex()

    def judge(self, source: str, path: str, sha: str, original: str, fingerprint: Fingerprint) -> str:
        """'' when the image is new (and now kept), else 'exact:<source>' or 'near:<source>'."""
        for index, value in ((self.stored, sha), (self.original, original)):
            if value in index:
                return f"exact:{index[value]}"
        found = self.near.add((source, path), fingerprint)
        if found is not None:
            return f"near:{found[0]}"
        self.stored[sha] = source
        self.original[original] = source
        return ""


def fingerprint_fields(fingerprint: Fingerprint) -> dict:
    """A fingerprint as JSON values (the thumbnail's grey levels are whole numbers 0..255)."""
    return {"phash": f"{fingerprint.phash:016x}", "aspect": fingerprint.aspect,
            "thumb": fingerprint.thumb.astype(np.uint8).tobytes().hex()}


def fingerprint_from(fields: dict) -> Fingerprint:
    thumb = np.frombuffer(bytes.fromhex(fields["thumb"]), dtype=np.uint8)
    return Fingerprint(int(fields["phash"], 16), fields["aspect"],
                       thumb.astype(np.float32).reshape(THUMB, THUMB))
