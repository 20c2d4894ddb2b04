"""eStargz blobs: readable as plain gzip tar, and everything a lazy puller relies on checks out."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from pybuildkit.worker.compression import CompressionError
from pybuildkit.worker.compression.estargz import footer, verify_estargz, write_estargz
from pybuildkit.worker.compression.estargz_verify import EstargzError, parse_footer

TOC_ANNOTATION = "containerd.io/snapshot/stargz/toc.digest"
SIZE_ANNOTATION = "io.containers.estargz.uncompressed-size"
CHUNK = 64 << 10


def _build(layer_tar: Path, dest: Path, **options) -> tuple[Path, object]:
    with open(dest, "wb") as out:
        blob = write_estargz(layer_tar, out, chunk_size=CHUNK, **options)
    return dest, blob


def _toc(path: Path) -> list[dict]:
    with tarfile.open(path, "r:gz") as tar:
        return json.loads(tar.extractfile("stargz.index.json").read())["entries"]  # type: ignore[union-attr]


def test_blob_is_an_ordinary_gzip_tar(layer_tar: Path, tmp_path: Path) -> None:
    path, _ = _build(layer_tar, tmp_path / "blob")
    listing = subprocess.run(f"gzip -dc {path} | tar t", shell=True, check=True, capture_output=True, text=True)
    names = listing.stdout.split()
    with tarfile.open(layer_tar) as original:
        expected = original.getnames()
    assert names == [".no.prefetch.landmark", *[n + ("/" if n in ("bin", "share") else "") for n in expected],
                     "stargz.index.json"]


def test_checker_accepts_footer_toc_digest_and_every_chunk(layer_tar: Path, tmp_path: Path) -> None:
    path, blob = _build(layer_tar, tmp_path / "blob")
    report = verify_estargz(path, expected_toc_digest=blob.annotations[TOC_ANNOTATION])
    random_chunks = -(-300_000 // CHUNK)
    text_chunks = -(-(tarfile.open(layer_tar).getmember("share/text").size) // CHUNK)
    small_files = 30 - 1  # small-0 is empty
    assert report.chunks_verified == 1 + random_chunks + text_chunks + small_files
    assert report.files_verified == 1 + 1 + 1 + small_files
    assert report.toc_digest == blob.annotations[TOC_ANNOTATION]
    assert report.landmark == ".no.prefetch.landmark"


def test_footer_is_51_bytes_pointing_at_the_toc_member(layer_tar: Path, tmp_path: Path) -> None:
    path, _ = _build(layer_tar, tmp_path / "blob")
    data = path.read_bytes()
    foot = data[-51:]
    assert foot == footer(parse_footer(foot))
    assert foot[:4] == b"\x1f\x8b\x08\x04" and foot[10:16] == b"\x1a\x00SG\x16\x00" and foot[32:38] == b"STARGZ"
    offset = int(foot[16:32], 16)
    with tarfile.open(fileobj=io.BytesIO(__import__("gzip").decompress(data[offset:-51]))) as tar:
        assert tar.getnames() == ["stargz.index.json"]


def test_annotations_describe_toc_and_uncompressed_size(layer_tar: Path, tmp_path: Path) -> None:
    path, blob = _build(layer_tar, tmp_path / "blob")
    plain = subprocess.run(["gzip", "-dc", str(path)], check=True, capture_output=True).stdout
    assert blob.annotations[SIZE_ANNOTATION] == str(len(plain)) == str(blob.uncompressed_size)  # type: ignore[attr-defined]
    assert blob.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()  # type: ignore[attr-defined]
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        toc_json = tar.extractfile("stargz.index.json").read()  # type: ignore[union-attr]
    assert blob.annotations[TOC_ANNOTATION] == "sha256:" + hashlib.sha256(toc_json).hexdigest()  # type: ignore[attr-defined]


def test_big_files_are_split_into_chunks(layer_tar: Path, tmp_path: Path) -> None:
    path, _ = _build(layer_tar, tmp_path / "blob")
    pieces = [e for e in _toc(path) if e["name"] == "bin/hardlink"]  # sorts first, so it carries the content
    assert pieces[0]["type"] == "reg" and all(p["type"] == "chunk" for p in pieces[1:])
    assert [p.get("chunkOffset", 0) for p in pieces] == list(range(0, 300_000, CHUNK))
    assert all(p["chunkSize"] == CHUNK for p in pieces[:-1]) and "chunkSize" not in pieces[-1]
    assert len({p["offset"] for p in pieces}) == len(pieces)


def test_toc_describes_links_xattrs_and_empty_files(layer_tar: Path, tmp_path: Path) -> None:
    path, _ = _build(layer_tar, tmp_path / "blob")
    entries = {e["name"]: e for e in _toc(path) if e["type"] != "chunk"}
    assert entries["share/link"]["type"] == "symlink" and entries["share/link"]["linkName"] == "../bin/random"
    assert entries["bin/random"]["type"] == "hardlink" and entries["bin/random"]["linkName"] == "bin/hardlink"
    assert entries["share/empty"]["digest"] == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert "offset" not in entries["share/empty"]
    assert entries["bin"]["type"] == "dir" and entries["bin"]["modtime"] == "2023-11-14T22:13:20Z"
    with tarfile.open(layer_tar) as original:
        if "SCHILY.xattr.security.capability" in original.getmember("bin/hardlink").pax_headers:
            assert entries["bin/hardlink"]["xattrs"] == {"security.capability": "AQAAAgAgAAAAAAAAAAAAAAAAAAA="}


def test_prioritized_files_come_first_then_the_prefetch_landmark(layer_tar: Path, tmp_path: Path) -> None:
    path, _ = _build(layer_tar, tmp_path / "blob", prioritized=["/share/text", "bin/random"])
    names = [e["name"] for e in _toc(path) if e["type"] != "chunk"]
    assert names[:6] == ["share", "share/text", "bin", "bin/hardlink", "bin/random", ".prefetch.landmark"]
    assert verify_estargz(path).landmark == ".prefetch.landmark"


def test_missing_prioritized_file_is_an_error(layer_tar: Path, tmp_path: Path) -> None:
    with pytest.raises(CompressionError, match="nope"):
        _build(layer_tar, tmp_path / "blob", prioritized=["nope"])


def test_same_bytes_at_any_thread_count(layer_tar: Path, tmp_path: Path) -> None:
    one, _ = _build(layer_tar, tmp_path / "one", threads=1)
    three, _ = _build(layer_tar, tmp_path / "three", threads=3)
    assert one.read_bytes() == three.read_bytes()


def test_rebuilding_from_the_decompressed_blob_is_idempotent(layer_tar: Path, tmp_path: Path) -> None:
    first, _ = _build(layer_tar, tmp_path / "first")
    plain = tmp_path / "plain.tar"
    plain.write_bytes(subprocess.run(["gzip", "-dc", str(first)], check=True, capture_output=True).stdout)
    second, _ = _build(plain, tmp_path / "second")
    assert first.read_bytes() == second.read_bytes()


def test_checker_catches_a_corrupt_chunk(layer_tar: Path, tmp_path: Path) -> None:
    path, _ = _build(layer_tar, tmp_path / "blob")
    target = next(e for e in _toc(path) if e["name"] == "share/text")
    data = bytearray(path.read_bytes())
    data[target["offset"] + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EstargzError):
        verify_estargz(path)


def test_checker_catches_a_wrong_toc_digest_and_a_broken_footer(layer_tar: Path, tmp_path: Path) -> None:
    path, _ = _build(layer_tar, tmp_path / "blob")
    with pytest.raises(EstargzError, match="annotation"):
        verify_estargz(path, expected_toc_digest="sha256:" + "0" * 64)
    path.write_bytes(path.read_bytes()[:-51] + footer(0))
    with pytest.raises(EstargzError):
        verify_estargz(path)
