"""The book's kernel manager for nbclient: a client that never sleeps through a message that has
arrived, and kernels on Unix sockets of their own.

    from kernel_client import BookKernelManager
    NotebookClient(nb, kernel_manager_class=BookKernelManager, ...)

Why: nbclient waits for each cell's ``execute_reply`` with one ``await socket.poll(600 000 ms)``
on jupyter_client's asyncio channel. pyzmq's asyncio poll is woken by the socket's file
descriptor, which ZeroMQ signals *edge-triggered*; when that edge is missed (it happens on these
shared machines, rarely), the reply sits in the socket while the poll sleeps on. At the timeout
pyzmq does a last real ``poll(0)``, finds the reply and carries on, so the cell "succeeds" ten
minutes late: chapter 6 once took 635 s of wall time for 36 s of CPU, its kernel idle in
``epoll_wait`` and the client in ``select`` (seen with gdb, ipykernel 7.4.0, jupyter_client
8.10.0, pyzmq 27.3.0). The channels here poll in slices of ``POLL_SLICE`` seconds up to the same
overall timeout, so a missed wake-up costs at most one slice, and a real timeout is still a
timeout. Nothing else changes: same messages, same order, same limits.

The kernels also talk over Unix sockets in a private temporary folder (``transport = "ipc"``), not
TCP: jupyter_client picks free TCP ports, closes them and lets the kernel bind them a moment later,
and with nbval starting its own kernels beside the book's, a kernel once found its heartbeat port
taken ("Address already in use"). Sockets in a folder of their own cannot collide.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import weakref
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type

POLL_SLICE = 0.5  # seconds: the longest a message that has arrived can wait unseen


class SlicedPollChannel(AsyncZMQSocketChannel):
    """``get_msg(timeout)`` as jupyter_client's, but polling in slices of at most ``POLL_SLICE``."""

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:  # type: ignore[override]
        assert self.socket is not None
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                if await self.socket.poll(0):  # one last look, as pyzmq's own timeout does
                    return await self._recv()
                raise Empty
            step = POLL_SLICE if left is None else min(POLL_SLICE, left)
            if await self.socket.poll(max(1, int(step * 1000))):
                return await self._recv()


class SlicedPollKernelClient(AsyncKernelClient):
    """An async kernel client whose shell, iopub, stdin and control channels poll in slices."""

    shell_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]
    iopub_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]
    stdin_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]
    control_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]


class BookKernelManager(AsyncKernelManager):
    """nbclient's default kernel manager, handing out :class:`SlicedPollKernelClient`, with the kernel's
    sockets in a temporary folder of its own (removed at shutdown)."""

    client_factory = Type(SlicedPollKernelClient)  # type: ignore[assignment]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)

    def _ip_default(self) -> str:
        if self.transport != "ipc":
            return super()._ip_default()
        # an absolute path: the kernel runs in the chapter's folder, the client elsewhere
        self._ipc_dir = tempfile.mkdtemp(prefix="tutorlib-kernel-")
        weakref.finalize(self, shutil.rmtree, self._ipc_dir, True)  # also if no kernel ever starts
        return str(Path(self._ipc_dir) / "k")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and getattr(self, "_ipc_dir", None):
            shutil.rmtree(self._ipc_dir, ignore_errors=True)
