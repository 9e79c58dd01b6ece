"""SQLite files shared by one crawl process's threads: WAL journal, autocommit, schema applied."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path


def connect(path: str | os.PathLike, schema: Iterable[str]) -> sqlite3.Connection:
    """Open (creating folders and tables) a database that survives kill -9 with committed rows intact."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    for statement in schema:
        db.execute(statement)
    return db
