"""Each compression round-trips to the layer's diff_id, is readable by the standard tools, and is
deterministic."""
from __future__ import annotations

import hashlib
import importlib.util
import io
import shutil
import subprocess
from pathlib import Path

import pytest
import zstandard

from pybuildkit.worker.compression import (CompressedBlob, Compression, CompressionError, compress_tar,
                                           decompress_reader, detect, media_types)
from pybuildkit.worker.compression.gzip import GzipBackend, gzip_stream
from pybuildkit.worker.compression.hashio import HashingReader, HashingWriter


def _compress(tar: Path, compression: Compression, level: int | None = None, threads: int = 2) -> tuple[bytes, CompressedBlob]:
    out = io.BytesIO()
    blob = compress_tar(tar, out, compression, level, threads=threads)
    return out.getvalue(), blob


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("compression", list(Compression))
def test_blob_digests_and_sizes_describe_the_bytes(layer_tar: Path, compression: Compression) -> None:
    data, blob = _compress(layer_tar, compression)
    assert blob.digest == _sha(data) and blob.size == len(data)
    plain = decompress_reader(io.BytesIO(data)).read()
    assert blob.diff_id == _sha(plain) and blob.uncompressed_size == len(plain)
    if compression != Compression.ESTARGZ:
        assert blob.diff_id == _sha(layer_tar.read_bytes())


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD, Compression.ESTARGZ])
def test_same_input_gives_same_bytes(layer_tar: Path, compression: Compression) -> None:
    assert _compress(layer_tar, compression)[0] == _compress(layer_tar, compression)[0]


MEDIA_TYPES = {
    Compression.UNCOMPRESSED: ("application/vnd.oci.image.layer.v1.tar", "application/vnd.docker.image.rootfs.diff.tar"),
    Compression.GZIP: ("application/vnd.oci.image.layer.v1.tar+gzip",
                       "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    Compression.ESTARGZ: ("application/vnd.oci.image.layer.v1.tar+gzip",
                          "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    Compression.ZSTD: ("application/vnd.oci.image.layer.v1.tar+zstd",
                       "application/vnd.docker.image.rootfs.diff.tar.zstd"),
}


@pytest.mark.parametrize("compression", list(Compression))
def test_media_types(layer_tar: Path, compression: Compression) -> None:
    _, blob = _compress(layer_tar, compression)
    assert (blob.media_type_oci, blob.media_type_docker) == MEDIA_TYPES[compression]
    assert media_types(compression) == MEDIA_TYPES[compression]


def test_gzip_blob_reads_back_with_gzip_tool(layer_tar: Path, tmp_path: Path) -> None:
    data, _ = _compress(layer_tar, Compression.GZIP)
    (tmp_path / "blob").write_bytes(data)
    plain = subprocess.run(["gzip", "-dc", str(tmp_path / "blob")], check=True, capture_output=True).stdout
    assert plain == layer_tar.read_bytes()


def test_zstd_blob_reads_back_with_zstd_tool(layer_tar: Path, tmp_path: Path) -> None:
    data, _ = _compress(layer_tar, Compression.ZSTD)
    if shutil.which("zstd"):
        (tmp_path / "blob").write_bytes(data)
        plain = subprocess.run(["zstd", "-dc", str(tmp_path / "blob")], check=True, capture_output=True).stdout
    else:
        plain = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    assert plain == layer_tar.read_bytes()


def _backend_available(backend: GzipBackend) -> bool:
    if backend == GzipBackend.ISAL:
        return importlib.util.find_spec("isal") is not None
    if backend == GzipBackend.IGZIP:
        return shutil.which("igzip") is not None
    return True


@pytest.mark.parametrize("backend", list(GzipBackend))
def test_every_gzip_backend_round_trips_deterministically(layer_tar: Path, backend: GzipBackend) -> None:
    if not _backend_available(backend):
        pytest.skip(f"gzip backend {backend} is not installed")
    outputs = []
    for _ in range(2):
        with open(layer_tar, "rb") as raw:
            out = io.BytesIO()
            gzip_stream(raw, out, 6, threads=2, backend=backend)
            outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]
    assert subprocess.run(["gzip", "-dc"], input=outputs[0], capture_output=True, check=True).stdout \
        == layer_tar.read_bytes()
    assert outputs[0][4:8] == b"\0\0\0\0"  # no mtime in the header


def test_zlib_backend_honours_the_exact_level(layer_tar: Path) -> None:
    sizes = {}
    for level in (0, 1, 9):
        out = io.BytesIO()
        with open(layer_tar, "rb") as raw:
            gzip_stream(raw, out, level, backend=GzipBackend.ZLIB)
        sizes[level] = len(out.getvalue())
    assert sizes[0] > layer_tar.stat().st_size > sizes[1] > sizes[9]


def test_igzip_backend_hashes_both_sides_through_compress_tar(layer_tar: Path, monkeypatch) -> None:
    if not shutil.which("igzip"):
        pytest.skip("igzip is not installed")
    from pybuildkit.worker.compression import compress as compress_module

    monkeypatch.setattr(compress_module, "gzip_backend", lambda: GzipBackend.IGZIP)
    data, blob = _compress(layer_tar, Compression.GZIP)
    assert blob.digest == _sha(data)
    assert blob.diff_id == _sha(layer_tar.read_bytes())


def test_default_levels_are_buildkits(layer_tar: Path) -> None:
    assert _compress(layer_tar, Compression.GZIP)[0] == _compress(layer_tar, Compression.GZIP, 6)[0]
    assert _compress(layer_tar, Compression.ZSTD)[0] == _compress(layer_tar, Compression.ZSTD, 3)[0]
    assert _compress(layer_tar, Compression.ESTARGZ)[0] == _compress(layer_tar, Compression.ESTARGZ, 9)[0]


@pytest.mark.parametrize(("compression", "level"), [(Compression.GZIP, 10), (Compression.ZSTD, 23),
                                                    (Compression.ESTARGZ, -1)])
def test_levels_out_of_range_are_refused(layer_tar: Path, compression: Compression, level: int) -> None:
    with pytest.raises(CompressionError, match=str(level)):
        _compress(layer_tar, compression, level)


def test_detect_by_magic_bytes() -> None:
    assert detect(b"\x1f\x8b\x08\x00") == Compression.GZIP
    assert detect(b"\x28\xb5\x2f\xfd") == Compression.ZSTD
    assert detect(b"etc/\0\0\0") == Compression.UNCOMPRESSED
    assert detect(b"") == Compression.UNCOMPRESSED


def test_decompress_reader_trusts_magic_over_media_type(layer_tar: Path) -> None:
    plain = layer_tar.read_bytes()
    reader = decompress_reader(io.BytesIO(plain), "application/vnd.oci.image.layer.v1.tar+gzip")
    assert reader.read() == plain


def test_hashing_wrappers_count_and_hash() -> None:
    reader = HashingReader(io.BytesIO(b"abc" * 1000))
    writer = HashingWriter(io.BytesIO())
    shutil.copyfileobj(reader, writer, 7)  # type: ignore[arg-type]
    assert reader.count == writer.count == 3000
    assert reader.digest == writer.digest == _sha(b"abc" * 1000)
