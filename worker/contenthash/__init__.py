"""Content checksums for cache keys."""
from pybuildkit.worker.contenthash.checksum import ChecksumCache, ChecksumError, checksum

__all__ = ["ChecksumCache", "ChecksumError", "checksum"]
