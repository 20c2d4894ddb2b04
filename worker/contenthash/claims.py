"""The link claims a daemon had not looked up yet (ChecksumCache.pending_claims), kept for the
next daemon on the root with the digest memo they refer to. A claim carries a digest only to an
inode that is still as claimed (see ChecksumCache._carry), so an old file is safe to read."""
from __future__ import annotations

from pathlib import Path

from pybuildkit.worker.contenthash.checksum import LinkClaim
from pybuildkit.worker.sealedfile import read_sealed, write_sealed

KIND = "link-claims 1"


def save_claims(path: Path, claims: list[LinkClaim]) -> None:
    write_sealed(path, KIND, claims)


def load_claims(path: Path) -> list[LinkClaim]:
    value = read_sealed(path, KIND)
    try:
        return [((int(k[0]), int(k[1]), int(k[2]), int(k[3]), int(k[4])), int(t)) for k, t in value or ()]
    except (TypeError, ValueError, IndexError):
        return []
