"""Which files of a commit a source takes: globs, then ``per_folder``, then ``cap`` (seeded).

Globs match whole repository paths: ``*`` and ``?`` stay inside one folder, ``**`` crosses folders
(``**/`` also matches no folder at all), ``[abc]`` is a character class. Sampling draws with one
``random.Random(seed)`` over sorted paths, folder by folder for ``per_folder``, then over what is
left for ``cap``; the result is returned sorted, so the same registry entry gives the same files.
"""

from __future__ import annotations

import functools
import random
import re
from collections import defaultdict
from posixpath import dirname

from training.sources.registry import Source


@functools.lru_cache(maxsize=None)
def glob_regex(pattern: str) -> re.Pattern:
    """The regular expression of one glob over '/'-separated paths."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(glob_regex(pattern).match(path) for pattern in patterns)


def select(source: Source, paths) -> list[str]:
    """The paths this source reads, sorted: image files matching include, not exclude, sampled."""
    chosen = sorted(path for path in paths
                    if path.lower().endswith(source.suffixes) and matches(path, source.include)
                    and not matches(path, source.exclude))
    rng = random.Random(source.seed)
    if source.per_folder:
        folders = defaultdict(list)
        for path in chosen:
            folders[dirname(path)].append(path)
        chosen = [path for folder in sorted(folders)
                  for path in _sample(rng, folders[folder], source.per_folder)]
    if source.cap:
        chosen = _sample(rng, chosen, source.cap)
    return sorted(chosen)


def _sample(rng: random.Random, paths: list[str], count: int) -> list[str]:
    return list(paths) if len(paths) <= count else sorted(rng.sample(paths, count))
