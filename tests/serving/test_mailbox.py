"""Engine threads hand tokens to the event loop through one mailbox per loop: nothing lost, order kept."""

from __future__ import annotations

import asyncio
import threading

import pytest

from secops_ai.inference.service import _Mailbox


def test_bursts_from_many_threads_arrive_complete_and_in_order() -> None:
    async def main() -> list[list[int]]:
        mailbox = _Mailbox(asyncio.get_running_loop())
        queues: list[asyncio.Queue] = [asyncio.Queue() for _ in range(8)]

        def row(i: int) -> None:  # one engine row emitting its tokens as fast as it can
            for token in range(500):
                mailbox.post(queues[i], token)

        threads = [threading.Thread(target=row, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        got = [[await asyncio.wait_for(q.get(), 10) for _ in range(500)] for q in queues]
        for t in threads:
            t.join()
        assert all(q.empty() for q in queues)
        return got

    assert asyncio.run(main()) == [list(range(500))] * 8


def test_a_closed_loop_raises_to_the_engine_and_the_mailbox_stays_usable() -> None:
    loop = asyncio.new_event_loop()
    mailbox = _Mailbox(loop)
    queue: asyncio.Queue = asyncio.Queue()
    loop.close()
    with pytest.raises(RuntimeError):  # the engine's _emit turns this into a cancelled row
        mailbox.post(queue, "token")
    with pytest.raises(RuntimeError):  # not stuck as "already scheduled", which would swallow events silently
        mailbox.post(queue, "token")
