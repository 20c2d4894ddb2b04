"""Layer compression: uncompressed, gzip, zstd, estargz."""
from pybuildkit.worker.compression.compress import compress_tar
from pybuildkit.worker.compression.detect import decompress_reader, detect
from pybuildkit.worker.compression.types import CompressedBlob, Compression, CompressionError, media_types

__all__ = ["CompressedBlob", "Compression", "CompressionError", "compress_tar", "decompress_reader", "detect",
           "media_types"]
