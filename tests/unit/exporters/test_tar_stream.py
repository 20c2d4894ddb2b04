"""An exported tarball is written in order to a file object that can neither seek nor tell (a
pipe, the session), with the very bytes tarfile's stream mode writes."""
from __future__ import annotations

import io
import tarfile

from pybuildkit.worker.exporters.ocitar import TAR_BUFFER, stream_tar


class WriteOnly:
    """A sink with write() alone, as the session's writer and a pipe are."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


ENTRIES = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
           ("blobs/sha256/" + "a" * 64, bytes(range(256)) * (TAR_BUFFER // 128 + 7)),
           ("a/" + "long-name-" * 20, b"pax header"),
           ("empty", b"")]


def _write(tar: tarfile.TarFile) -> None:
    with tar:
        for name, data in ENTRIES:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o444
            tar.addfile(info, io.BytesIO(data))


def test_the_tarball_has_the_bytes_of_tarfiles_stream_mode() -> None:
    ours, theirs = WriteOnly(), WriteOnly()
    _write(stream_tar(ours))  # type: ignore[arg-type]
    _write(tarfile.open(fileobj=theirs, mode="w|", format=tarfile.PAX_FORMAT))  # type: ignore[call-overload]
    assert bytes(ours.data) == bytes(theirs.data)


def test_the_tarball_reads_back_entry_for_entry() -> None:
    sink = WriteOnly()
    _write(stream_tar(sink))  # type: ignore[arg-type]
    with tarfile.open(fileobj=io.BytesIO(bytes(sink.data))) as tar:
        assert [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()] == ENTRIES  # type: ignore[union-attr]
