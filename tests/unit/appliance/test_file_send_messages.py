"""An export reaches the client as FileSend messages of one chunk up to twice that, in order,
nothing lost; a chunk-sized write with nothing waiting is sent without a copy."""
from __future__ import annotations

from pybuildkit.appliance.session.manager import MessageGatherer

CHUNK = 64


def _send(writes: list[bytes]) -> tuple[list[bytes], bytes]:
    gather = MessageGatherer(CHUNK)
    messages = [message for data in writes for message in gather.add(data)]
    return messages, gather.rest()


def test_small_writes_are_joined_into_messages_of_a_chunk_or_more() -> None:
    writes = [bytes([n]) * 10 for n in range(20)]
    messages, rest = _send(writes)
    assert b"".join(messages) + rest == b"".join(writes)
    assert all(CHUNK <= len(m) < 2 * CHUNK for m in messages)
    assert len(rest) < CHUNK


def test_a_chunk_sized_write_with_nothing_waiting_is_the_message_itself() -> None:
    block = b"x" * CHUNK
    messages, _ = _send([block])
    assert messages[0] is block


def test_a_write_of_many_chunks_is_split_under_twice_a_chunk() -> None:
    header, big = b"h" * 5, bytes(range(256)) * 3 + b"tail"
    messages, rest = _send([header, big])
    assert b"".join(messages) + rest == header + big
    assert all(CHUNK <= len(m) < 2 * CHUNK for m in messages)
    assert rest == b""
