"""The default client loop: rounds of concurrent calls, a log line per answer, periodic
summaries. The one call it makes is also what the closed-loop callers make."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import grpc
import structlog
from hellolb import trailers
from hellolb.v1 import hello_pb2, hello_pb2_grpc

from hello_client import events
from hello_client.config import ClientConfig
from hello_client.retry import RpcRetry
from hello_client.stats import Stats
from hello_client.summaries import summaries, wait

CLIENT_EXCEPTION = "CLIENT_EXCEPTION"
# When a whole round fails (no server reachable), pause before the next one, doubling
# from the first to the last value, so an outage does not turn into a busy loop.
FAILED_ROUND_PAUSE = (0.1, 2.0)


def failed_by(error: grpc.aio.AioRpcError) -> str | None:
    """The server that answered with ``error``, when it said so (None for an error that no
    server of ours sent: no connection, a deadline, a proxy's own answer)."""
    value = (error.trailing_metadata() or {}).get(trailers.SERVER_ID_KEY)
    return value if isinstance(value, str) else None


class Runner:
    """Sends rounds of ``concurrency`` calls until stopped or a configured bound is reached."""

    def __init__(
        self,
        config: ClientConfig,
        stub: hello_pb2_grpc.HelloServiceStub,
        stats: Stats,
        retry: RpcRetry,
        log: structlog.typing.FilteringBoundLogger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stub = stub
        self.stats = stats
        self.log = log
        self.clock = clock
        self.counter = 0
        self.retry = retry
        # When the latest answer arrived, whichever call it was: a caller that failed can tell
        # an outage (nothing answered for a while) from one failing server among healthy ones.
        self.last_answer = -math.inf

    async def call(self, counter: int) -> bool:
        """One Hello call, retried per hello_client.retry; True when answered. Nothing is raised."""
        request = hello_pb2.HelloRequest(client_id=self.config.client_id, counter=counter)
        started = self.clock()
        try:
            response = await self.retry(
                lambda: self.stub.Hello(request, timeout=self.config.rpc_timeout)
            )
        except grpc.aio.AioRpcError as error:
            latency = self.clock() - started
            server_id = failed_by(error)
            self.stats.error(error.code().name, server_id)
            self.log.warning(
                events.ERROR,
                counter=counter,
                code=error.code().name,
                details=error.details(),
                latency_ms=round(latency * 1000, 3),
                server_id=server_id,
            )
            return False
        except Exception:
            self.stats.error(CLIENT_EXCEPTION)
            self.log.exception(events.EXCEPTION, counter=counter)
            return False
        self.last_answer = self.clock()
        latency = self.last_answer - started
        self.stats.answer(response.server_id, latency)
        if self.config.log_responses:
            self.log.info(
                events.RESPONSE,
                counter=counter,
                server_id=response.server_id,
                server_pod_ip=response.server_pod_ip,
                server_node=response.server_node,
                peer=response.server_address,
                via=response.caller_address,
                latency_ms=round(latency * 1000, 3),
                message=response.message,
            )
        return True

    async def round(self) -> int:
        """Send one round of concurrent calls; return how many were answered."""
        first = self.counter + 1
        self.counter += self.config.concurrency
        outcomes = await asyncio.gather(
            *(self.call(first + i) for i in range(self.config.concurrency))
        )
        self.stats.round_done()
        return sum(outcomes)

    def _bound_reached(self, started: float) -> str | None:
        config = self.config
        if config.max_rounds and self.stats.rounds_total >= config.max_rounds:
            return "max_rounds"
        if config.max_duration and self.clock() - started >= config.max_duration:
            return "max_duration"
        return None

    async def run(self, stopping: asyncio.Event) -> str:
        """Loop until ``stopping`` is set or a bound is reached; return why it ended."""
        started = self.clock()
        first_pause, last_pause = FAILED_ROUND_PAUSE
        pause = first_pause
        async with summaries(self.stats.summary, self.config.summary_interval, stopping, self.log):
            while not stopping.is_set():
                reached = self._bound_reached(started)
                if reached:
                    return reached
                if await self.round():
                    pause = first_pause
                    if self.config.round_interval > 0:
                        await wait(stopping, self.config.round_interval)
                else:
                    await wait(stopping, max(pause, self.config.round_interval))
                    pause = min(pause * 2, last_pause)
            return "signal"
