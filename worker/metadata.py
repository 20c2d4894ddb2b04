"""The worker's own bookkeeping (which snapshot holds an image layer chain, which blob a layer
was pulled as, which blobs a layer was exported as), kept apart from the solver's cache records
so that cleaning one never drops the other."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class MetadataStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        # one row an inode, its latest key: the memo of a context rebuilt a thousand times stays
        # the size of the context (file_digests, keyed by the whole key, grew by it every build)
        self._db.execute("DROP TABLE IF EXISTS file_digests")
        self._db.execute("CREATE TABLE IF NOT EXISTS file_memo (dev INTEGER, ino INTEGER, size INTEGER, "
                         "mtime INTEGER, ctime INTEGER, digest TEXT NOT NULL, PRIMARY KEY (dev, ino)) WITHOUT ROWID")
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                             (key, value))

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM meta WHERE key >= ? AND key < ?", (prefix, prefix + "\uffff")).rowcount

    def file_digests(self) -> dict[tuple[int, int, int, int, int], str]:
        """The persisted content-digest memo of files (see contenthash.ChecksumCache)."""
        with self._lock:
            rows = self._db.execute("SELECT dev, ino, size, mtime, ctime, digest FROM file_memo").fetchall()
        return {tuple(row[:5]): row[5] for row in rows}

    def save_file_digests(self, items: dict[tuple[int, int, int, int, int], str]) -> None:
        if not items:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO file_memo VALUES (?, ?, ?, ?, ?, ?)",
                                 [(*key, digest) for key, digest in items.items()])
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
