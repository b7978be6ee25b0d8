"""tools/kernel_client.py: the book's notebook client polls its sockets in short slices, so a reply
that has arrived is never slept through for the whole cell limit, and a real timeout still raises;
its kernels use Unix sockets in a folder of their own, so no TCP port can be taken by another kernel."""

import asyncio
import sys
from pathlib import Path
from queue import Empty

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import kernel_client  # noqa: E402
from kernel_client import POLL_SLICE, BookKernelManager, SlicedPollChannel  # noqa: E402


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
    client = BookKernelManager().client()
    for name in ("shell", "iopub", "stdin", "control"):
        assert getattr(client, f"{name}_channel_class") is SlicedPollChannel, name


def test_the_books_executor_and_the_chapter_timer_use_it():
    for rel in ("tools/execute_chapters.py", "benchmarks/chapter_times.py"):
        assert "kernel_manager_class=BookKernelManager" in (ROOT / rel).read_text(), rel


def test_the_kernel_talks_over_its_own_unix_sockets_and_cleans_them_up(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    code = ("import os\nfrom ipykernel.connect import get_connection_info\n"
            "info = get_connection_info(unpack=True)\nprint(os.getcwd(), info['transport'], info['ip'])")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, timeout=60, kernel_name="python3", kernel_manager_class=BookKernelManager,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    cwd, transport, ip = nb.cells[0].outputs[0]["text"].split()
    assert cwd == str(tmp_path)  # the kernel runs in the notebook's folder
    assert transport == "ipc" and Path(ip).is_absolute()  # so the client finds the sockets from elsewhere
    assert Path(ip).parent.name.startswith("tutorlib-kernel-")
    assert not Path(ip).parent.exists()  # removed at shutdown
