"""The one caller every loop shares: the call itself (deadline, retry layer, statistics, log
line), the loop's limits (MAX_ROUNDS, MAX_DURATION), the pause after a failure, and the summary
lines while a loop runs. A loop (:mod:`hello_client.rounds`, :mod:`hello_client.closedloop`,
:mod:`hello_client.streams`) only decides when to call."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import grpc
import structlog
from hellolb import trailers
from hellolb.v1 import hello_pb2, hello_pb2_grpc

from hello_client import events
from hello_client.config import ClientConfig
from hello_client.retry import RpcRetry, is_limited, pushback_seconds
from hello_client.stats import Stats
from hello_client.summaries import Fields, summaries

#: The code counted for a call that failed with something other than a gRPC error (a bug).
CLIENT_EXCEPTION = "CLIENT_EXCEPTION"
# When nothing answers (no server reachable), pause before trying again, doubling from the
# first to the last value, so an outage does not turn into a busy loop.
FAILED_ROUND_PAUSE = (0.1, 2.0)


def failed_by(error: grpc.aio.AioRpcError) -> str | None:
    """The server that answered with ``error``, when it said so (None for an error that no
    server of ours sent: no connection, a deadline, a proxy's own answer)."""
    value = (error.trailing_metadata() or {}).get(trailers.SERVER_ID_KEY)
    return value if isinstance(value, str) else None


class Backoff:
    """The pause after a failure: FAILED_ROUND_PAUSE's first value, doubled after each failure
    up to its last value, and back to the first after a success."""

    def __init__(self) -> None:
        self.first, self.last = FAILED_ROUND_PAUSE
        self.pause = self.first

    def next(self) -> float:
        """The pause to take now; the following one is twice as long."""
        pause = self.pause
        self.pause = min(pause * 2, self.last)
        return pause

    def reset(self) -> None:
        self.pause = self.first


class Pacing:
    """One slot's pause after a limited call (RESOURCE_EXHAUSTED), so that a limit is not met
    with the next call at once: the largest pushback the server asked for, else a backoff from
    ``first`` doubling per limited batch, with +-20 % jitter (the spread of grpc's own connection
    backoff, grpc/grpc doc/connection-backoff.md), every pause capped at ``cap``. A batch (a
    round, or one closed-loop call) with no limited call starts the backoff again."""

    JITTER = 0.2

    def __init__(self, first: float, cap: float, rng: random.Random | None = None) -> None:
        self.first, self.cap = first, cap
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._doublings = 0
        self._limited = False
        self._pushback: float | None = None

    def limited(self, pushback: float | None) -> None:
        """A call of the batch was limited; ``pushback`` in seconds when the server sent one."""
        self._limited = True
        if pushback is not None:
            self._pushback = max(self._pushback or 0.0, pushback)

    def take(self) -> float:
        """The pause before the slot's next call (0 when nothing was limited); a new batch."""
        limited, pushback = self._limited, self._pushback
        self._limited, self._pushback = False, None
        if not limited:
            self._doublings = 0
            return 0.0
        if pushback is not None:
            return min(pushback, self.cap)
        base = min(self.first * 2**self._doublings, self.cap)
        self._doublings = min(self._doublings + 1, 32)
        spread = self._rng.uniform(1 - self.JITTER, 1 + self.JITTER)
        return min(base * spread, self.cap)


class Caller:
    """Makes the client's calls, counts them, logs them; what every loop shares."""

    def __init__(
        self,
        config: ClientConfig,
        stub: hello_pb2_grpc.HelloServiceStub,
        stats: Stats,
        log: structlog.typing.FilteringBoundLogger,
        retry: RpcRetry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stub = stub
        self.stats = stats
        # Resolved once: structlog's lazy proxy would look its logger up again for every line.
        self.log = log.bind()
        self.retry = retry or RpcRetry(config.rpc_retries, config.limit_backoff_max)
        self.clock = clock
        #: The number of the latest call (or stream): each gets the next one.
        self.counter = 0
        # When the latest answer arrived, whichever call it was: a caller that failed can tell
        # an outage (nothing answered for a while) from one failing server among healthy ones.
        self.last_answer = -math.inf

    def next_number(self) -> int:
        self.counter += 1
        return self.counter

    def limit(self, calls: int, started: float) -> str | None:
        """Which bound ``calls`` made since ``started`` reached, if any: ``max_rounds`` (a
        count of rounds, or of one closed-loop caller's calls) or ``max_duration``."""
        config = self.config
        if config.max_rounds and calls >= config.max_rounds:
            return "max_rounds"
        if config.max_duration and self.clock() - started >= config.max_duration:
            return "max_duration"
        return None

    def summaries(
        self, stopping: asyncio.Event, fields: Fields | None = None
    ) -> AbstractAsyncContextManager[None]:
        """Summary lines every SUMMARY_INTERVAL while the block runs, and a final one."""
        return summaries(
            fields or self.stats.summary, self.config.summary_interval, stopping, self.log
        )

    def pacing(self) -> Pacing:
        """A new slot's pause after limited calls, from LIMIT_BACKOFF and LIMIT_BACKOFF_MAX."""
        return Pacing(self.config.limit_backoff, self.config.limit_backoff_max)

    async def call(self, counter: int, pacing: Pacing | None = None) -> bool:
        """One Hello call under RPC_TIMEOUT, retried per hello_client.retry, counted and
        logged; True when answered. A limited call is told to ``pacing``. Nothing is raised."""
        request = hello_pb2.HelloRequest(client_id=self.config.client_id, counter=counter)
        stub, timeout = self.stub, self.config.rpc_timeout
        started = self.clock()
        try:
            response = await self.retry(lambda: stub.Hello(request, timeout=timeout))
        except grpc.aio.AioRpcError as error:
            if is_limited(error):
                self._limited(counter, error, self.clock() - started, pacing)
            else:
                self._failed(counter, error, self.clock() - started)
            return False
        except Exception:
            self.stats.error(CLIENT_EXCEPTION)
            self.log.exception(events.EXCEPTION, counter=counter)
            return False
        self.last_answer = now = self.clock()
        latency = now - started
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

    def _failed(self, counter: int, error: grpc.aio.AioRpcError, latency: float) -> None:
        code, server_id = error.code().name, failed_by(error)
        self.stats.error(code, server_id)
        self.log.warning(
            events.ERROR,
            counter=counter,
            code=code,
            details=error.details(),
            latency_ms=round(latency * 1000, 3),
            server_id=server_id,
        )

    def _limited(
        self,
        counter: int,
        error: grpc.aio.AioRpcError,
        latency: float,
        pacing: Pacing | None,
    ) -> None:
        server_id, pushback = failed_by(error), pushback_seconds(error)
        self.stats.limited(server_id)
        if pacing is not None:
            pacing.limited(pushback)
        self.log.warning(
            events.LIMITED,
            counter=counter,
            code=error.code().name,
            details=error.details(),
            latency_ms=round(latency * 1000, 3),
            server_id=server_id,
            pushback_ms=None if pushback is None else round(pushback * 1000),
        )
