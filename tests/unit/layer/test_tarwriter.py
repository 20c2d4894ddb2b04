"""The tar writer's header bytes: Go archive/tar's PAX flavour, valid for every reader."""
from __future__ import annotations

import io
import os
import tarfile

from pybuildkit.worker.layer.tarwriter import CHRTYPE, DIRTYPE, SYMTYPE, TarEntry, TarWriter, header_bytes


def test_plain_header_has_ustar_magic_zero_devices_and_no_names() -> None:
    block = header_bytes(TarEntry(name="etc/hosts", mode=0o644, uid=0, gid=0, size=5, mtime=1))
    assert len(block) == 512
    assert block[257:265] == b"ustar\x0000"
    assert block[265:297] == b"\0" * 32 and block[297:329] == b"\0" * 32
    assert block[329:337] == b"0000000\0" and block[337:345] == b"0000000\0"
    assert block[100:108] == b"0000644\0"
    assert tarfile.TarInfo.frombuf(block, "utf-8", "strict").name == "etc/hosts"


def test_device_numbers_only_for_devices() -> None:
    block = header_bytes(TarEntry(name="dev/null", type=CHRTYPE, mode=0o666, devmajor=1, devminor=3))
    info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
    assert (info.devmajor, info.devminor) == (1, 3)


def test_long_names_big_ids_and_xattrs_use_a_pax_header() -> None:
    name = "d/" + "n" * 150
    data = header_bytes(TarEntry(name=name, type=SYMTYPE, linkname="é" * 60, uid=3_000_000, gid=7,
                                 pax={"SCHILY.xattr.security.capability": b"\x01\x00\x00\x02\xff"}))
    assert data[156:157] == b"x" and data[:16] == b"d/PaxHeaders.0/n"
    with tarfile.open(fileobj=io.BytesIO(data + b"\0" * 1024)) as tar:
        member = tar.next()
    assert member is not None
    assert member.name == name and member.linkname == "é" * 60 and member.uid == 3_000_000
    raw = member.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape")
    assert raw == b"\x01\x00\x00\x02\xff"


def test_writer_streams_file_content_with_padding(tmp_path) -> None:
    source = tmp_path / "src"
    source.write_bytes(b"z" * 1000)
    out = io.BytesIO()
    writer = TarWriter(out)
    writer.add(TarEntry(name="dir/", type=DIRTYPE, mode=0o755))
    fd = os.open(source, os.O_RDONLY)
    try:
        writer.add(TarEntry(name="dir/file", size=1000), fd)
    finally:
        os.close(fd)
    writer.close()
    assert len(out.getvalue()) == 512 + 512 + 1024 + 1024
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.extractfile("dir/file").read() == b"z" * 1000  # type: ignore[union-attr]
