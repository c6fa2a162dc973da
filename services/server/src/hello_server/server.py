"""Server lifecycle: start, health, signals, graceful stop, live-update reload."""

from __future__ import annotations

import asyncio
import enum
import signal

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from hellolb.v1 import hello_pb2, hello_pb2_grpc

from hello_server.config import ServerConfig
from hello_server.servicer import HelloServicer, ServerIdentity

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

    async def stop(self, grace: float) -> None:
        """NOT_SERVING first, then refuse new calls and give in-flight calls ``grace`` seconds."""
        if self._server is None:
            return
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace)
        self._server = None


def identity_of(config: ServerConfig) -> ServerIdentity:
    return ServerIdentity(
        server_id=config.server_id,
        address=config.public_address,
        pod_ip=config.pod_ip,
        node_name=config.node_name,
    )


async def serve(config: ServerConfig) -> Stop:
    """Run until SIGTERM/SIGINT (stop) or SIGHUP (reload); return which one it was."""
    log = structlog.get_logger("hello_server")
    servicer = HelloServicer(identity_of(config), config.work_time, log=log)
    server = HelloServer(config, servicer, log)
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[tuple[Stop, str]] = loop.create_future()

    def on_signal(sig: signal.Signals, why: Stop) -> None:
        if not stopped.done():
            stopped.set_result((why, sig.name))

    for sig, why in (
        (signal.SIGTERM, Stop.TERMINATE),
        (signal.SIGINT, Stop.TERMINATE),
        (signal.SIGHUP, Stop.RELOAD),
    ):
        loop.add_signal_handler(sig, on_signal, sig, why)

    await server.start()
    log.info("server.started", address=config.bind_address, port=server.port)
    why, signame = await stopped
    grace = config.shutdown_grace
    log.info("server.stopping", signal=signame, reason=why.value, grace_seconds=grace)
    await server.stop(grace)
    log.info("server.stopped", reason=why.value)
    return why
