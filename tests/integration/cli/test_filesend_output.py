"""A file output written on the client through FileSend (as pybuildkitd streams an oci or
docker tarball): it lands whole at its destination, or, when the daemon gives up midway (a
failed export cancels the call), not at all (real grpc.aio over a unix socket)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from pybuildkit.appliance.session import services as svc
from pybuildkit.appliance.session.client import ClientSession, OutputTarget
from pybuildkit.appliance.session.proto import session_pb2 as spb

pytestmark = pytest.mark.integration

CHUNKS = [bytes([i]) * (1 << 20) for i in range(24)]  # more than the client's write-behind queue holds


async def _send(dest: Path, sock: Path, *, finish: bool) -> None:
    session = ClientSession(outputs=[OutputTarget("file", str(dest))])
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(tuple(session._generic()))
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
            call = channel.stream_stream(svc.FILESEND_DIFFCOPY, request_serializer=spb.BytesMessage.SerializeToString,
                                         response_deserializer=spb.BytesMessage.FromString)(
                metadata=[(svc.KEY_EXPORTER_ID, "0")])
            for chunk in CHUNKS if finish else CHUNKS[:20]:
                await call.write(spb.BytesMessage(data=chunk))
            if finish:
                await call.done_writing()
                assert await call.code() == grpc.StatusCode.OK
            else:
                call.cancel()
                await asyncio.sleep(0.5)  # let the client's handler see the cancellation
    finally:
        await server.stop(1)


def test_a_finished_file_send_lands_whole(tmp_path: Path) -> None:
    dest = tmp_path / "image.tar"
    asyncio.run(_send(dest, tmp_path / "s.sock", finish=True))
    assert dest.read_bytes() == b"".join(CHUNKS)
    assert not (tmp_path / "image.tar.pbk-part").exists()


def test_a_cancelled_file_send_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "image.tar"
    asyncio.run(_send(dest, tmp_path / "s.sock", finish=False))
    assert not dest.exists()
    assert not (tmp_path / "image.tar.pbk-part").exists()
