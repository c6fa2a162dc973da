"""The default loop, the seed's: rounds of CONCURRENCY calls at once, each round waiting for
all of its calls, forever (or until MAX_ROUNDS or MAX_DURATION)."""

from __future__ import annotations

import asyncio

from hello_client.caller import Backoff, Caller, Pacing
from hello_client.summaries import wait


class RoundLoop:
    """Sends rounds of ``concurrency`` calls until stopped or a configured bound is reached."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.config = caller.config

    async def round(self, pacing: Pacing | None = None) -> int:
        """Send one round of concurrent calls; return how many were answered."""
        caller = self.caller
        numbers = [caller.next_number() for _ in range(self.config.concurrency)]
        answered = await asyncio.gather(*(caller.call(number, pacing) for number in numbers))
        caller.stats.round_done()
        return sum(answered)

    async def run(self, stopping: asyncio.Event) -> str:
        """Loop until ``stopping`` is set or a bound is reached; return why it ended."""
        caller, interval = self.caller, self.config.round_interval
        started = caller.clock()
        backoff, pacing = Backoff(), caller.pacing()
        async with caller.summaries(stopping):
            while not stopping.is_set():
                reached = caller.limit(caller.stats.rounds_total, started)
                if reached:
                    return reached
                answered = await self.round(pacing)
                limited_pause = pacing.take()
                if answered:
                    backoff.reset()
                if limited_pause:
                    # A limit answered: the next round waits (hello_client.caller.Pacing).
                    await wait(stopping, max(limited_pause, interval))
                elif answered:
                    if interval > 0:
                        await wait(stopping, interval)
                else:
                    # Not one call answered: no server is reachable, do not spin.
                    await wait(stopping, max(backoff.next(), interval))
            return "signal"
