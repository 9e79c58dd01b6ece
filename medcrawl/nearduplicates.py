"""The same picture at another size or compression: a perceptual hash proposes, pixels confirm.

``Fingerprint.of(image)`` keeps a 64-bit DCT hash (ImageHash's ``phash``), the aspect ratio and a
16x16 greyscale thumbnail. Two fingerprints show the same picture when the hashes differ in at most
``MAX_HASH_BITS`` bits, the aspect ratios agree within 5 % and the thumbnails differ by at most
``MAX_PIXEL_DIFFERENCE`` grey levels on average. ``NearDuplicateIndex`` finds, for each picture
added, an earlier one it repeats: candidates share one of the hash's four 16-bit bands (every pair
within 3 bits does; most pairs within 4 to 6 do), then the pixels decide.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Generic, Hashable, TypeVar

import imagehash
import numpy as np
from PIL import Image

MAX_HASH_BITS = 6
MAX_PIXEL_DIFFERENCE = 8.0     # mean absolute difference of the 16x16 greyscale thumbnails (0-255)
MAX_ASPECT_RATIO = 1.05
THUMB = 16
BANDS = 4

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Fingerprint:
    """What two pictures are compared by."""

    phash: int
    aspect: float
    thumb: np.ndarray

    @classmethod
    def of(cls, image: Image.Image) -> "Fingerprint":
        grey = image.convert("L")
        bits = imagehash.phash(grey).hash.flatten()
        value = int("".join("1" if b else "0" for b in bits), 2)
        thumb = np.asarray(grey.resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.float32)
        return cls(value, image.width / max(image.height, 1), thumb)

    def bands(self) -> list[tuple[int, int]]:
        width = 64 // BANDS
        return [(i, (self.phash >> (i * width)) & ((1 << width) - 1)) for i in range(BANDS)]

    def same_picture(self, other: "Fingerprint") -> bool:
        """True when the two show the same picture (resized, recompressed, converted)."""
        if bin(self.phash ^ other.phash).count("1") > MAX_HASH_BITS:
            return False
        if abs(math.log(self.aspect / other.aspect)) > math.log(MAX_ASPECT_RATIO):
            return False
        return float(np.abs(self.thumb - other.thumb).mean()) <= MAX_PIXEL_DIFFERENCE


class NearDuplicateIndex(Generic[Key]):
    """Fingerprints by key; ``add`` says which earlier key a new picture repeats, if any."""

    def __init__(self) -> None:
        self._prints: dict[Key, Fingerprint] = {}
        self._bands: dict[tuple[int, int], list[Key]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self._prints)

    def match(self, fingerprint: Fingerprint) -> Key | None:
        """The first key added whose picture this fingerprint repeats, or None."""
        seen: set[Key] = set()
        for band in fingerprint.bands():
            for key in self._bands.get(band, ()):
                if key not in seen:
                    seen.add(key)
                    if fingerprint.same_picture(self._prints[key]):
                        return key
        return None

    def add(self, key: Key, fingerprint: Fingerprint) -> Key | None:
        """Record ``key``; return the earlier key it repeats (then it is not indexed itself)."""
        found = self.match(fingerprint)
        if found is None:
            self._prints[key] = fingerprint
            for band in fingerprint.bands():
                self._bands[band].append(key)
        return found
