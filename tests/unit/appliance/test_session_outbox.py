"""The session stream's outbox holds at most its limit: the pump that fills it waits until the
stream has taken enough, and the end of the stream comes after what was queued."""
from __future__ import annotations

import asyncio

from pybuildkit.appliance.session.transport import Outbox


def test_a_full_outbox_makes_the_sender_wait_until_the_stream_takes_its_messages() -> None:
    async def scenario() -> tuple[bool, bool, list[bytes]]:
        outbox = Outbox(limit=4)
        await outbox.put(b"abcd")
        blocked = asyncio.ensure_future(outbox.put(b"ef"))
        await asyncio.sleep(0.05)
        waited = not blocked.done()
        messages = outbox.messages()
        first = await messages.__anext__()
        await asyncio.wait_for(blocked, 1)
        outbox.close()
        rest = [m async for m in messages]
        return waited, blocked.done(), [first, *rest]

    waited, done, messages = asyncio.run(scenario())
    assert waited and done
    assert messages == [b"abcd", b"ef"]
