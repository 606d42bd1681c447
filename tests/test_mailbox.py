"""The latest-frame mailbox: newest wins, drops are counted, threads and asyncio readers alike."""

import asyncio
import threading
import time

from livemotion.runtime.mailbox import LatestSlot


def test_latest_slot_keeps_only_the_newest():
    slot: LatestSlot[int] = LatestSlot()
    replaced = [slot.put(i) for i in range(5)]
    assert replaced == [False, True, True, True, True]
    assert slot.get(timeout=0) == 4 and slot.dropped == 4
    slot.close()
    assert slot.get(timeout=0) is None and slot.closed


def test_an_asyncio_reader_is_woken_by_a_writer_thread_and_by_close():
    slot: LatestSlot[int] = LatestSlot()

    def writer() -> None:
        for i in range(50):
            slot.put(i)
            time.sleep(0.002)
        slot.close()

    async def read_all() -> list[int]:
        thread = threading.Thread(target=writer)
        thread.start()
        seen = []
        while (item := await asyncio.wait_for(slot.get_async(), timeout=5)) is not None:
            seen.append(item)
            await asyncio.sleep(0.005)  # a slow reader: it must skip, not queue
        thread.join()
        return seen

    seen = asyncio.run(read_all())
    assert seen == sorted(seen) and seen[-1] == 49  # in order, and the newest always arrives
    assert len(seen) + slot.dropped == 50 and slot.dropped > 0
