"""Client lifecycle: wait for the server, run the loop, stop on signals."""

from __future__ import annotations

import asyncio
import enum
import signal
import time
from collections.abc import Awaitable, Callable

import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hellolb.v1 import hello_pb2_grpc

from hello_client import events
from hello_client.caller import Caller
from hello_client.channel import create_channel
from hello_client.closedloop import ClosedLoop
from hello_client.config import ClientConfig
from hello_client.retry import NotServingError, startup_retrying
from hello_client.rounds import RoundLoop
from hello_client.stats import Stats
from hello_client.streams import StreamLoop


class Outcome(enum.Enum):
    DONE = 0
    SERVER_NEVER_READY = 1
    RELOAD = -1


async def wait_for_server(
    channel: object, config: ClientConfig, log: structlog.typing.FilteringBoundLogger
) -> int:
    """Ask the health service until it says SERVING; return how many attempts it took."""
    health = health_pb2_grpc.HealthStub(channel)
    attempts = 0
    async for attempt in startup_retrying(config.startup_timeout, log):
        with attempt:
            attempts = attempt.retry_state.attempt_number
            reply = await health.Check(
                health_pb2.HealthCheckRequest(), timeout=min(config.rpc_timeout, 2.0)
            )
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                raise NotServingError(f"health status {name}")
    return attempts


async def run_client(config: ClientConfig) -> Outcome:
    log = structlog.get_logger("hello_client")
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    outcome = Outcome.DONE

    def on_signal(sig: signal.Signals, result: Outcome) -> None:
        nonlocal outcome
        if not stopping.is_set():
            outcome = result
            log.info(events.SIGNAL, signal=sig.name)
            stopping.set()

    for sig, result in (
        (signal.SIGTERM, Outcome.DONE),
        (signal.SIGINT, Outcome.DONE),
        (signal.SIGHUP, Outcome.RELOAD),
    ):
        loop.add_signal_handler(sig, on_signal, sig, result)

    async with create_channel(config) as channel:
        started = time.monotonic()
        waiting = asyncio.create_task(wait_for_server(channel, config, log))
        stopped = asyncio.create_task(stopping.wait())
        await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
            log.info(events.STOPPED, reason="signal before the server was ready")
            return outcome
        stopped.cancel()
        try:
            attempts = waiting.result()
        except Exception as error:  # the last startup error, after STARTUP_TIMEOUT
            log.error(
                events.STARTUP_FAILED,
                error=str(error),
                waited_seconds=round(time.monotonic() - started, 3),
            )
            return Outcome.SERVER_NEVER_READY
        log.info(
            events.READY,
            attempts=attempts,
            waited_seconds=round(time.monotonic() - started, 3),
        )
        reason = await loop_for(config, hello_pb2_grpc.HelloServiceStub(channel), log)(stopping)
        log.info(events.STOPPED, reason=reason)
    return outcome


def loop_for(
    config: ClientConfig,
    stub: hello_pb2_grpc.HelloServiceStub,
    log: structlog.typing.FilteringBoundLogger,
) -> Callable[[asyncio.Event], Awaitable[str]]:
    """The ``run`` of the loop CLIENT_MODE asks for: it runs until stopped and says why."""
    caller = Caller(config, stub, Stats(mode=config.mode), log)
    return LOOPS[config.mode](caller).run


#: The loop of each CLIENT_MODE, each built on the one caller.
LOOPS: dict[str, Callable[[Caller], RoundLoop | ClosedLoop | StreamLoop]] = {
    "rounds": RoundLoop,
    "closed_loop": ClosedLoop,
    "streams": StreamLoop,
}
