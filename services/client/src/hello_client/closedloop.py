"""The closed-loop mode: CONCURRENCY callers, each calling again as soon as it is answered.

Rounds start every call together and wait for the slowest, so each round begins with the
same number of calls in flight on every server: a least-request balancer sees no difference
between a slow server and a fast one. Callers that never wait for each other keep the slow
server's calls piling up, which is what least-request and load-report balancers react to.
"""

from __future__ import annotations

import asyncio

from hello_client.caller import Backoff, Caller
from hello_client.summaries import wait


class ClosedLoop:
    """Runs the callers until stopped or a bound is reached.

    ``MAX_ROUNDS`` bounds each caller's calls (the same number of calls as that many rounds);
    ``ROUND_INTERVAL`` is each caller's pause after an answer. A caller whose call failed, even
    after retries, pauses only when no call at all was answered since that call started nor in
    the last pause's time: an outage then does not become a busy loop, while a server that
    fails fast among healthy ones keeps its share of the calls, as it would in production.
    """

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.config = caller.config

    async def _caller(self, stopping: asyncio.Event, started: float) -> str:
        caller, interval = self.caller, self.config.round_interval
        backoff, pacing = Backoff(), caller.pacing()
        calls = 0
        while not stopping.is_set():
            reached = caller.limit(calls, started)
            if reached:
                return reached
            called = caller.clock()
            answered = await caller.call(caller.next_number(), pacing)
            calls += 1
            limited_pause = pacing.take()
            if limited_pause:
                # A limit answered: this caller waits (hello_client.caller.Pacing).
                await wait(stopping, max(limited_pause, interval))
            elif answered:
                backoff.reset()
                if interval > 0:
                    await wait(stopping, interval)
            elif caller.last_answer < min(called, caller.clock() - backoff.first):
                # Nothing answers: no server is reachable, do not spin.
                await wait(stopping, max(backoff.next(), interval))
            elif interval > 0:
                await wait(stopping, interval)
        return "signal"

    async def run(self, stopping: asyncio.Event) -> str:
        """Run every caller until ``stopping`` is set or a bound is reached; return why."""
        started = self.caller.clock()
        async with self.caller.summaries(stopping):
            reasons = await asyncio.gather(
                *(self._caller(stopping, started) for _ in range(self.config.concurrency))
            )
        return "signal" if stopping.is_set() else reasons[0]
