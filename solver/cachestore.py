"""Cache records: which result (a snapshot id) a cache key produced. SQLite in WAL mode so a
crash at any point leaves either the old or the new record, never half of one."""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    cache_key TEXT PRIMARY KEY,
    result_id TEXT NOT NULL,
    vertex TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used REAL NOT NULL,
    usage_count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS records_result ON records(result_id);
"""


@dataclass(frozen=True)
class CacheRecord:
    cache_key: str
    result_id: str
    vertex: str
    created_at: float
    last_used: float
    usage_count: int


class CacheStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def lookup(self, cache_key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT result_id FROM records WHERE cache_key=?", (cache_key,)).fetchone()
            if row is not None:
                self._db.execute(
                    "UPDATE records SET last_used=?, usage_count=usage_count+1 WHERE cache_key=?",
                    (time.time(), cache_key))
        return row[0] if row else None

    def save(self, cache_key: str, result_id: str, vertex: str) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO records(cache_key, result_id, vertex, created_at, last_used) VALUES (?,?,?,?,?) "
                "ON CONFLICT(cache_key) DO UPDATE SET result_id=excluded.result_id, last_used=excluded.last_used",
                (cache_key, result_id, vertex, now, now))

    def records(self) -> Iterator[CacheRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT cache_key, result_id, vertex, created_at, last_used, usage_count FROM records").fetchall()
        return (CacheRecord(*row) for row in rows)

    def delete_where_result(self, result_id: str) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM records WHERE result_id=?", (result_id,)).rowcount

    def drop_dangling(self, result_exists: Callable[[str], bool]) -> int:
        """Remove records whose result no longer exists (after a crash or a prune)."""
        dropped = 0
        for record in list(self.records()):
            if not result_exists(record.result_id):
                with self._lock:
                    self._db.execute("DELETE FROM records WHERE cache_key=?", (record.cache_key,))
                dropped += 1
        return dropped
