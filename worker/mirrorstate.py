"""What each local mirror was last synced to: kept in memory by the daemon, and on disk from one
daemon to the next, so that a fresh daemon (every `--daemonless` build) answers a no-op context
transfer as a long-running one does, without comparing or checksumming the mirror again.

A state on disk is true only while its mirror is untouched, and only a daemon holding the root
writes mirrors. So a daemon saves its states when it closes, and takes a state off the disk
(reads and deletes it) before it syncs that mirror: a daemon that is killed afterwards leaves
no state that its mirror may have outgrown.
"""
from __future__ import annotations

import hashlib
import marshal
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

#: mirrors whose last listing is kept in memory (some MB for a context of 20,000 files)
LISTINGS_KEPT = 8
#: the file format: marshal's, so the interpreter's version is part of it
MAGIC = f"pbk-mirror-state 1 py{sys.version_info[0]}.{sys.version_info[1]}\n".encode()


@dataclass(frozen=True)
class MirrorState:
    """What a mirror was brought to by its last sync: that listing's digest, entries and the
    client's walk digest (given to the next sync as `known`, `known_walk`) and the checksum
    taken of the result."""
    listing: str
    checksum: str
    entries: frozenset[bytes] | None = None
    walk: str = ""


def remember(states: dict[Path, MirrorState], mirror: Path, state: MirrorState) -> None:
    """Record `state` as the newest; the oldest mirrors beyond LISTINGS_KEPT keep no entries."""
    states.pop(mirror, None)
    states[mirror] = state
    with_entries = [m for m, s in states.items() if s.entries is not None]
    for old in with_entries[:-LISTINGS_KEPT]:
        states[old] = replace(states[old], entries=None)


def state_path(mirror: Path) -> Path:
    return mirror.with_name(mirror.name + ".state")


def save_states(states: Mapping[Path, MirrorState]) -> None:
    """Write each state beside its mirror (atomically: a partial file is never read as one)."""
    for mirror, state in states.items():
        entries = sorted(state.entries) if state.entries is not None else None
        payload = marshal.dumps((state.listing, state.checksum, state.walk, entries))
        path = state_path(mirror)
        temp = path.with_name(path.name + ".tmp")
        try:
            with open(temp, "wb") as out:
                out.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
            os.replace(temp, path)
        except OSError:
            temp.unlink(missing_ok=True)  # a state is only ever a shortcut: the next sync compares


def take_saved(mirror: Path) -> MirrorState | None:
    """The state a closed daemon saved for `mirror`, removed from the disk as it is read."""
    path = state_path(mirror)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    if not data.startswith(MAGIC):
        return None
    digest, _, payload = data[len(MAGIC):].partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        return None
    try:
        listing, checksum, walk, entries = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return None
    return MirrorState(listing, checksum, frozenset(entries) if entries is not None else None, walk)
