"""The closed-loop mode: CONCURRENCY callers, each calling again as soon as it is answered.

Rounds start every call together and wait for the slowest, so each round begins with the
same number of calls in flight on every server: a least-request balancer sees no difference
between a slow server and a fast one. Callers that never wait for each other keep the slow
server's calls piling up, which is what least-request and load-report balancers react to.
"""

from __future__ import annotations

import asyncio

from hello_client.runner import FAILED_ROUND_PAUSE, Runner
from hello_client.summaries import summaries, wait


class ClosedLoop:
    """Runs the callers until stopped or a bound is reached.

    ``MAX_ROUNDS`` bounds each caller's calls (the same number of calls as that many rounds);
    ``ROUND_INTERVAL`` is each caller's pause after an answer. A caller whose call failed, even
    after retries, pauses only when no call at all was answered since that call started nor in
    the last pause's time: an outage then does not become a busy loop, while a server that
    fails fast among healthy ones keeps its share of the calls, as it would in production.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.config = runner.config

    async def _caller(self, stopping: asyncio.Event, started: float) -> str:
        config, runner = self.config, self.runner
        first_pause, last_pause = FAILED_ROUND_PAUSE
        pause = first_pause
        calls = 0
        while not stopping.is_set():
            if config.max_rounds and calls >= config.max_rounds:
                return "max_rounds"
            if config.max_duration and runner.clock() - started >= config.max_duration:
                return "max_duration"
            runner.counter += 1
            called = runner.clock()
            answered = await runner.call(runner.counter)
            calls += 1
            if answered:
                pause = first_pause
                if config.round_interval > 0:
                    await wait(stopping, config.round_interval)
            elif runner.last_answer < min(called, runner.clock() - first_pause):
                # Nothing answers: no server is reachable, do not spin.
                await wait(stopping, max(pause, config.round_interval))
                pause = min(pause * 2, last_pause)
            elif config.round_interval > 0:
                await wait(stopping, config.round_interval)
        return "signal"

    async def run(self, stopping: asyncio.Event) -> str:
        """Run every caller until ``stopping`` is set or a bound is reached; return why."""
        started = self.runner.clock()
        log, stats = self.runner.log, self.runner.stats
        async with summaries(stats.summary, self.config.summary_interval, stopping, log):
            reasons = await asyncio.gather(
                *(self._caller(stopping, started) for _ in range(self.config.concurrency))
            )
        return "signal" if stopping.is_set() else reasons[0]
