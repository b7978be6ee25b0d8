"""tools/kernel_client.py: the book's notebook client polls its sockets in short slices, so a reply
that has arrived is never slept through for the whole cell limit, and a real timeout still raises."""

import asyncio
import sys
from pathlib import Path
from queue import Empty

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import kernel_client  # noqa: E402
from kernel_client import POLL_SLICE, SlicedPollChannel, SlicedPollKernelManager  # noqa: E402


class _Socket:
    """A socket whose message is there from the start but whose wake-up is missed: each poll
    sleeps its whole timeout (scaled down) and only the ``seen_at``-th poll reports the message."""

    def __init__(self, seen_at=None):
        self.polls, self.seen_at = [], seen_at

    async def poll(self, timeout_ms=None):
        self.polls.append(timeout_ms)
        await asyncio.sleep(0 if not timeout_ms else timeout_ms / 1e6)  # 1,000 times faster than real
        return int(self.seen_at is not None and len(self.polls) >= self.seen_at)


def _channel(socket):
    ch = SlicedPollChannel.__new__(SlicedPollChannel)  # no real zmq socket or session needed
    ch.socket = socket

    async def _recv():
        return {"msg": "the reply"}

    ch._recv = _recv
    return ch


def test_a_missed_wake_up_costs_one_slice_not_the_whole_timeout():
    sock = _Socket(seen_at=3)
    msg = asyncio.run(_channel(sock).get_msg(timeout=600))
    assert msg == {"msg": "the reply"}
    assert len(sock.polls) == 3
    assert all(0 < ms <= POLL_SLICE * 1000 for ms in sock.polls), sock.polls  # never one 600 s poll


def test_a_real_timeout_still_raises_empty(monkeypatch):
    monkeypatch.setattr(kernel_client, "POLL_SLICE", 0.01)
    sock = _Socket(seen_at=None)
    with pytest.raises(Empty):
        asyncio.run(_channel(sock).get_msg(timeout=0.05))
    assert sock.polls[-1] == 0  # the last look at the deadline, as pyzmq's own timeout takes
    assert len(sock.polls) >= 2


def test_no_timeout_waits_in_slices_until_the_message_is_seen():
    sock = _Socket(seen_at=5)
    assert asyncio.run(_channel(sock).get_msg(timeout=None)) == {"msg": "the reply"}
    assert sock.polls == [int(POLL_SLICE * 1000)] * 5


def test_the_manager_hands_out_sliced_channels_on_every_polled_channel():
    client = SlicedPollKernelManager().client()
    for name in ("shell", "iopub", "stdin", "control"):
        assert getattr(client, f"{name}_channel_class") is SlicedPollChannel, name


def test_the_books_executor_and_the_chapter_timer_use_it():
    for rel in ("tools/execute_chapters.py", "benchmarks/chapter_times.py"):
        assert "kernel_manager_class=SlicedPollKernelManager" in (ROOT / rel).read_text(), rel
