"""A dataset folder's near-duplicate groups and their splits, kept in DIR/near-duplicates.csv.

Every content (sha256) that enters the dataset gets one line: its group, size, split and
fingerprint, appended as it comes, so a resumed or later crawl carries on with the same groups.
A group is found by ``nearduplicates.NearDuplicateIndex`` (mode ``near``) or is the content itself
(mode ``exact``). The group's first document decided its split; its kept image is its largest
member (the first of equal ones), which a later, larger copy replaces.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from medcrawl.files import repair_partial_line
from medcrawl.nearduplicates import Fingerprint, NearDuplicateIndex

GROUPS_FILE = "near-duplicates.csv"
FIELDS = ("sha256", "group", "width", "height", "split", "fingerprint")


@dataclass
class Group:
    """One picture of the dataset: its split and the member kept as its file."""

    id: str
    split: str
    kept: str
    kept_pixels: int


class DuplicateGroups:
    """Which group each content belongs to (``near`` or ``exact``), read from and appended to a file."""

    def __init__(self, root: Path, mode: str):
        self.path, self.mode = Path(root) / GROUPS_FILE, mode
        self.index: NearDuplicateIndex[str] = NearDuplicateIndex()
        self.groups: dict[str, Group] = {}
        self.members: dict[str, str] = {}           # sha256 -> group id
        if self.path.exists() and self.path.stat().st_size:
            repair_partial_line(self.path)
            with open(self.path, newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    self._take(row["sha256"], row["group"], int(row["width"]) * int(row["height"]),
                               row["split"], row["fingerprint"])

    def group_of(self, sha256: str) -> Group | None:
        group = self.members.get(sha256)
        return None if group is None else self.groups[group]

    def add(self, sha256: str, size: tuple[int, int], split: str, fingerprint: Fingerprint | None) -> Group:
        """Record new content; its group (an earlier one it repeats, or its own, in ``split``)."""
        found = None
        if self.mode == "near" and fingerprint is not None:
            found = self.index.match(fingerprint)
        group = found or sha256
        split = self.groups[found].split if found else split
        text = fingerprint.to_text() if fingerprint is not None else ""
        self._append([sha256, group, size[0], size[1], split, text])
        return self._take(sha256, group, size[0] * size[1], split, text)

    def _take(self, sha256: str, group_id: str, pixels: int, split: str, fingerprint: str) -> Group:
        self.members[sha256] = group_id
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = Group(group_id, split, sha256, pixels)
            if fingerprint:
                self.index.add(group_id, Fingerprint.from_text(fingerprint))
        elif pixels > group.kept_pixels:
            group.kept, group.kept_pixels = sha256, pixels
        return group

    def _append(self, values: list) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(FIELDS)
            writer.writerow(values)
            fh.flush()
            os.fsync(fh.fileno())
