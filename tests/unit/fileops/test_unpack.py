"""ADD unpacks local tar archives (plain, gzip, bzip2, xz, zstd) into the destination."""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from pybuildkit.worker.ops.fileops import FileOpError, Owner, copy
from tests.unit.fileops.conftest import copy_action, listing, mode_of, require_root, write_tree

MTIME = 1_400_000_000


def _tar(*entries: tuple[str, str, str]) -> bytes:
    """(kind, name, data-or-linkname); kind: file, dir, symlink, hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid = MTIME, 1001, 1002
            if kind == "file":
                info.mode, info.size = 0o640, len(data)
                tar.addfile(info, io.BytesIO(data.encode()))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o750
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
            else:
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, data, 0o640
            tar.addfile(info)
    return buf.getvalue()


ARCHIVE = _tar(("dir", "top", ""), ("file", "top/foo", "content0"), ("file", "implied/bar", "b"),
               ("symlink", "top/link", "foo"), ("hardlink", "top/hard", "top/foo"))
COMPRESSORS = {"tar": lambda b: b, "tar.gz": gzip.compress, "tar.bz2": bz2.compress, "tar.xz": lzma.compress,
               "tar.zst": lambda b: zstandard.ZstdCompressor().compress(b)}


def _add(src: Path, dest: Path, name: str, target: str, owner: Owner | None = None) -> None:
    copy(src, dest, copy_action(f"/{name}", target, attemptUnpackDockerCompatibility=True, followSymlink=True,
                                createDestPath=True), owner)


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_archives_are_extracted_whatever_the_compression(src: Path, dest: Path, suffix: str) -> None:
    (src / f"t.{suffix}").write_bytes(COMPRESSORS[suffix](ARCHIVE))
    _add(src, dest, f"t.{suffix}", "/")
    assert listing(dest) == ["implied/", "implied/bar", "top/", "top/foo", "top/hard", "top/link -> foo"]
    assert (dest / "top/foo").read_text() == "content0"


def test_entries_keep_their_modes_times_and_hardlinks(src: Path, dest: Path) -> None:
    (src / "t.tar").write_bytes(ARCHIVE)
    _add(src, dest, "t.tar", "/x")
    assert (mode_of(dest / "x/top"), mode_of(dest / "x/top/foo"), mode_of(dest / "x/implied")) == (0o750, 0o640, 0o755)
    assert os.stat(dest / "x/top").st_mtime == MTIME and os.stat(dest / "x/top/foo").st_mtime == MTIME
    assert os.stat(dest / "x/top/hard").st_ino == os.stat(dest / "x/top/foo").st_ino


def test_destination_without_slash_is_still_a_directory(src: Path, dest: Path) -> None:
    (src / "t.tar.gz").write_bytes(gzip.compress(ARCHIVE))
    _add(src, dest, "t.tar.gz", "/newdir")
    assert (dest / "newdir/top/foo").is_file()


def test_extraction_merges_into_existing_content(src: Path, dest: Path) -> None:
    (src / "t.tar").write_bytes(ARCHIVE)
    write_tree(dest, {"top/old": "o", "top/foo": "replaced"})
    _add(src, dest, "t.tar", "/")
    assert (dest / "top/old").read_text() == "o" and (dest / "top/foo").read_text() == "content0"


def test_archive_owners_are_kept_or_replaced_by_chown(src: Path, dest: Path) -> None:
    require_root()
    (src / "t.tar").write_bytes(ARCHIVE)
    _add(src, dest, "t.tar", "/kept")
    _add(src, dest, "t.tar", "/owned", Owner(7, 8))
    st = os.stat(dest / "kept/top/foo")
    assert (st.st_uid, st.st_gid) == (1001, 1002)
    assert (os.stat(dest / "kept/implied").st_uid, os.lstat(dest / "owned/top/link").st_uid) == (0, 7)
    assert {os.lstat(dest / "owned" / rel).st_gid for rel in ("top", "top/foo", "implied/bar")} == {8}


def test_non_archives_are_copied_as_files(src: Path, dest: Path) -> None:
    write_tree(src, {"plain.tar": "not really a tar", "fake.gz": ""})
    (src / "fake.gz").write_bytes(gzip.compress(b"plain text, not a tar"))
    _add(src, dest, "plain.tar", "/")
    _add(src, dest, "fake.gz", "/")
    assert listing(dest) == ["fake.gz", "plain.tar"]


def test_copy_without_unpack_keeps_the_archive(src: Path, dest: Path) -> None:
    (src / "t.tar").write_bytes(ARCHIVE)
    copy(src, dest, copy_action("/t.tar", "/"), None)
    assert listing(dest) == ["t.tar"]


def test_whiteout_names_are_plain_files_in_add(src: Path, dest: Path) -> None:
    (src / "t.tar").write_bytes(_tar(("file", ".wh.keep", "x")))
    write_tree(dest, {"keep": "mine"})
    _add(src, dest, "t.tar", "/")
    assert listing(dest) == [".wh.keep", "keep"]


@pytest.mark.parametrize("entries", [
    (("file", "../../escape", "x"),),
    (("symlink", "up", "../../.."), ("file", "up/escape", "x")),
    (("symlink", "abs", "/"), ("file", "abs/../../escape", "x")),
])
def test_entries_cannot_escape_the_destination(src: Path, dest: Path, entries: tuple) -> None:
    (src / "t.tar").write_bytes(_tar(*entries))
    target = dest / "in"
    _add(src, dest, "t.tar", "/in")
    assert not (dest.parent / "escape").exists() and not (dest / "escape").exists()
    assert any(p.name == "escape" for p in target.rglob("*"))


def test_hardlink_to_a_missing_entry_fails(src: Path, dest: Path) -> None:
    (src / "t.tar").write_bytes(_tar(("hardlink", "h", "/etc/passwd")))
    with pytest.raises(FileOpError, match="failed to unpack /"):
        _add(src, dest, "t.tar", "/")
