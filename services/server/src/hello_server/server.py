"""Server lifecycle: start, health, signals, graceful stop, live-update reload."""

from __future__ import annotations

import asyncio
import enum
import signal
from dataclasses import dataclass

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from hellolb.v1 import hello_pb2, hello_pb2_grpc

from hello_server.config import ServerConfig
from hello_server.orca import LoadMeter
from hello_server.servicer import HelloServicer, ServerIdentity
from hello_server.streams import OpenStreams

SERVICE_NAME = hello_pb2.DESCRIPTOR.services_by_name["HelloService"].full_name


class Stop(enum.Enum):
    """Why the server stopped."""

    TERMINATE = "terminate"
    RELOAD = "reload"


class BindError(RuntimeError):
    """The listen address is taken or does not exist on this host."""


def grpc_options(config: ServerConfig) -> list[tuple[str, int]]:
    """Channel arguments of the server, from its configuration."""
    # A second server must not silently share a busy port: fail instead.
    options = [("grpc.so_reuseport", 0)]
    if config.max_connection_age is not None:
        options.append(("grpc.max_connection_age_ms", round(config.max_connection_age * 1000)))
    if config.max_connection_age_grace is not None:
        options.append(
            ("grpc.max_connection_age_grace_ms", round(config.max_connection_age_grace * 1000))
        )
    return options


class HelloServer:
    """A grpc.aio server with Hello, health and reflection on one port."""

    def __init__(
        self,
        config: ServerConfig,
        servicer: HelloServicer,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self.config = config
        self.servicer = servicer
        self.log = log
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        server = grpc.aio.server(options=grpc_options(self.config))
        hello_pb2_grpc.add_HelloServiceServicer_to_server(self.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            self.port = server.add_insecure_port(self.config.listen_target)
        except RuntimeError as error:
            raise BindError(f"cannot listen on {self.config.listen_target}: {error}") from None
        await server.start()
        self._server = server
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def report_not_serving(self) -> None:
        """NOT_SERVING on every health name, for good; calls are still served."""
        await self.health.enter_graceful_shutdown()

    async def close_streams(self, grace: float) -> None:
        """End every open stream cleanly, waiting up to ``grace`` for them to finish."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        was_open, still_open = await self.servicer.streams.close(grace)
        self.log.info(
            "server.streams_closed",
            streams=was_open,
            still_open=still_open,
            seconds=round(loop.time() - started, 3),
        )

    async def stop(self, grace: float) -> None:
        """NOT_SERVING first, then end the streams, refuse new calls and give in-flight calls
        ``grace`` seconds."""
        if self._server is None:
            return
        await self.report_not_serving()
        await self.close_streams(grace)
        await self._server.stop(grace)
        self._server = None


def identity_of(config: ServerConfig) -> ServerIdentity:
    return ServerIdentity(
        server_id=config.server_id,
        address=config.public_address,
        pod_ip=config.pod_ip,
        node_name=config.node_name,
    )


@dataclass(frozen=True)
class StopRequest:
    """What a signal asks the server to do."""

    why: Stop
    signal: str
    drain: float


def stop_request(sig: signal.Signals, config: ServerConfig) -> StopRequest:
    """SIGTERM drains first; SIGINT and SIGHUP stop without a drain.

    SIGTERM is how an orchestrator replaces a server, with clients still sending. SIGINT is
    Ctrl-C at a terminal: whoever presses it wants the server gone now. SIGHUP is the dev
    loop's reload, sent to every replica at once: draining them together would leave the
    clients no server to turn to.
    """
    if sig == signal.SIGHUP:
        return StopRequest(Stop.RELOAD, sig.name, 0.0)
    drain = config.drain_delay if sig == signal.SIGTERM else 0.0
    return StopRequest(Stop.TERMINATE, sig.name, drain)


async def drain(delay: float, signals: asyncio.Queue[signal.Signals]) -> str | None:
    """Wait ``delay`` seconds while calls are still served.

    A further SIGTERM or SIGINT ends the wait early: its name is returned, else None.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + delay
    while (remaining := deadline - loop.time()) > 0:
        try:
            sig = await asyncio.wait_for(signals.get(), remaining)
        except TimeoutError:
            continue
        if sig in (signal.SIGTERM, signal.SIGINT):
            return sig.name
    return None


async def serve(config: ServerConfig) -> Stop:
    """Run until SIGTERM/SIGINT (stop) or SIGHUP (reload); return which one it was.

    Stopping on SIGTERM goes in two steps, because grpc's own stop races with calls that are
    still arriving: the server cancels every call it has received but not yet handed to a
    handler, and can lose track of one it was handing over (it then holds it until the grace
    runs out). So the server first reports NOT_SERVING and keeps serving for the drain delay,
    long enough for clients that watch its health, and for Kubernetes endpoints, to stop
    sending; only then does it stop accepting calls and give those in flight the grace.
    """
    log = structlog.get_logger("hello_server")
    servicer = HelloServicer(
        identity_of(config),
        config.work_time,
        log=log,
        faults=config.faults,
        load=LoadMeter() if config.orca_reports else None,
        streams=OpenStreams(),
    )
    server = HelloServer(config, servicer, log)
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, signals.put_nowait, sig)

    await server.start()
    log.info("server.started", address=config.bind_address, port=server.port)
    request = stop_request(await signals.get(), config)
    grace = config.shutdown_grace
    log.info(
        "server.stopping",
        signal=request.signal,
        reason=request.why.value,
        drain_seconds=request.drain,
        grace_seconds=grace,
    )
    if request.drain > 0:
        started = loop.time()
        await server.report_not_serving()
        cut_short_by = await drain(request.drain, signals)
        log.info(
            "server.drained",
            seconds=round(loop.time() - started, 3),
            cut_short_by=cut_short_by,
        )
    await server.stop(grace)
    log.info("server.stopped", reason=request.why.value)
    return request.why
