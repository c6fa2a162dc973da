"""Notice when a file (the zone) changes, within milliseconds, without reading it in a busy loop.

On Linux an inotify watch on the file's folder wakes the event loop when a file there is closed
after writing or renamed into place (:class:`~hellolb_lab.dns.Zone` writes a temporary file and
renames it); elsewhere, or if inotify is not available, the file is checked every
``POLL_S``. Either way the file counts as changed when its inode or modification time differs,
the test the lab DNS server uses, and a slow poll stays on as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from collections.abc import Callable
from pathlib import Path

#: inotify(7) event bits: written and closed, renamed in, created, deleted, renamed away.
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_MASK = _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE

#: Seconds between checks without inotify, and as the safety net with it.
POLL_S = 0.02
SAFETY_POLL_S = 1.0

Stamp = tuple[int, int] | None


def stamp(path: Path) -> Stamp:
    """``(inode, mtime_ns)`` of ``path``, or None if it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _inotify_fd(folder: Path) -> int | None:
    """A non-blocking inotify descriptor watching ``folder``, or None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init = libc.inotify_init1
        add = libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    fd = init(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        return None
    if add(fd, os.fsencode(folder), _MASK) < 0:
        os.close(fd)
        return None
    return fd


class FileWatcher:
    """Calls ``on_change()`` on the event loop whenever ``path`` changes (see module doc)."""

    def __init__(self, path: Path, on_change: Callable[[], None]) -> None:
        self.path = path
        self.on_change = on_change
        self._stamp: Stamp = stamp(path)
        self._fd: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def uses_inotify(self) -> bool:
        return self._fd is not None

    def check(self) -> None:
        """Call ``on_change`` if the file differs from when it was last seen."""
        now = stamp(self.path)
        if now != self._stamp:
            self._stamp = now
            self.on_change()

    def _on_readable(self) -> None:
        assert self._fd is not None
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 65536):  # drain; which file changed does not matter
                pass
        self.check()

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.check()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._fd = _inotify_fd(self.path.parent)
        if self._fd is not None:
            loop.add_reader(self._fd, self._on_readable)
        interval = SAFETY_POLL_S if self._fd is not None else POLL_S
        self._task = loop.create_task(self._poll(interval))
        self.check()

    def stop(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
