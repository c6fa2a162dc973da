"""The Ticks streams a server is serving, and the one signal that ends them all.

A stream never ends by itself, and grpc's ``server.stop(grace)`` would hold every open stream
for the whole grace and then cut it (the caller sees CANCELLED or UNAVAILABLE). So before the
server stops accepting calls it closes its streams: each ends with status OK and the trailing
metadata ``hellolb-stream-end: drain``, which tells the caller to open a new stream. A stream
that opens after that ends the same way at once, without a tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class OpenStreams:
    """Counts the open streams; ``close`` ends them and waits until they are gone."""

    def __init__(self) -> None:
        self._closing = asyncio.Event()
        self._none_open = asyncio.Event()
        self._none_open.set()
        self.count = 0

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count one stream while the block runs."""
        self.count += 1
        self._none_open.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self._none_open.set()

    async def pause(self, seconds: float) -> bool:
        """Wait ``seconds``, or less if the streams are closed meanwhile; True when closed."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def none_open(self) -> None:
        """Return once no stream is open."""
        await self._none_open.wait()

    async def close(self, grace: float) -> tuple[int, int]:
        """End every stream and wait up to ``grace`` seconds for their handlers to return.

        Returns how many streams were open, and how many still are.
        """
        was_open = self.count
        self._closing.set()
        if grace > 0:
            with suppress(TimeoutError):
                await asyncio.wait_for(self.none_open(), grace)
        return was_open, self.count
