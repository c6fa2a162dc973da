"""One ``client.summary`` line per SUMMARY_INTERVAL while a loop runs, and a final one after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog

from hello_client import events

#: Builds the fields of a summary line and starts a new window; ``final`` on the last one.
Fields = Callable[..., dict[str, object]]


async def wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True when it was set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


@asynccontextmanager
async def summaries(
    fields: Fields,
    interval: float,
    stopping: asyncio.Event,
    log: structlog.typing.FilteringBoundLogger,
) -> AsyncIterator[None]:
    """Log ``fields()`` every ``interval`` until ``stopping`` or the block ends, then
    ``fields(final=True)`` once, however the block ends."""

    async def every_interval() -> None:
        while not await wait(stopping, interval):
            log.info(events.SUMMARY, **fields())

    reporter = asyncio.create_task(every_interval())
    try:
        yield
    finally:
        reporter.cancel()
        log.info(events.SUMMARY, **fields(final=True))
