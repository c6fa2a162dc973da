"""The business logic: validate, inject the configured faults, simulate work, answer with the
server's identity; for Ticks, one answer per interval until the caller or the server ends it."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import structlog
from hellolb import ticks, trailers
from hellolb.v1 import hello_pb2, hello_pb2_grpc

from hello_server.faults import FaultPlan, Faults
from hello_server.orca import LoadMeter
from hello_server.streams import OpenStreams

MAX_CLIENT_ID_LENGTH = 128
#: How a stream ended, as ``rpc.stream_ended`` says: the server closed it (drain), or the
#: caller or the connection went away (a cancel, a deadline, max connection age plus grace).
STREAM_END_DRAIN = ticks.END_DRAIN
STREAM_END_CANCELLED = "cancelled"

Work = Callable[[float], Awaitable[None]]
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class ServerIdentity:
    """What a server says about itself in every answer."""

    server_id: str
    address: str
    pod_ip: str = ""
    node_name: str = ""


def validate(request: hello_pb2.HelloRequest | hello_pb2.TicksRequest) -> str | None:
    """Return why ``request`` is refused, or None when it is acceptable."""
    if not request.client_id:
        return "client_id is required"
    if len(request.client_id) > MAX_CLIENT_ID_LENGTH:
        return f"client_id is longer than {MAX_CLIENT_ID_LENGTH} characters"
    if not request.client_id.isprintable():
        return "client_id must be printable text"
    return None


def validate_ticks(request: hello_pb2.TicksRequest) -> str | None:
    """Return why a Ticks ``request`` is refused, or None when it is acceptable."""
    reason = validate(request)
    if (
        reason is None
        and request.interval_ms
        and not (ticks.MIN_INTERVAL_MS <= request.interval_ms <= ticks.MAX_INTERVAL_MS)
    ):
        reason = (
            f"interval_ms must be 0 (the default, {ticks.DEFAULT_INTERVAL_MS}) or from "
            f"{ticks.MIN_INTERVAL_MS} to {ticks.MAX_INTERVAL_MS}"
        )
    return reason


def guarded(handler: Handler) -> Handler:
    """Answer INTERNAL, with a generic message, for any exception a handler did not expect.

    The exception is logged once with its traceback; aborts and cancellations pass through.
    """

    @functools.wraps(handler)
    async def wrapper(self: HelloServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception:
            self.log.exception("rpc.failed", method=handler.__name__, peer=context.peer())
            await self._refuse(context, grpc.StatusCode.INTERNAL, "internal error")

    return wrapper  # type: ignore[return-value]


class HelloServicer(hello_pb2_grpc.HelloServiceServicer):
    def __init__(
        self,
        identity: ServerIdentity,
        work_time: float,
        work: Work = asyncio.sleep,
        log: structlog.typing.FilteringBoundLogger | None = None,
        faults: Faults | None = None,
        load: LoadMeter | None = None,
        streams: OpenStreams | None = None,
    ) -> None:
        self.identity = identity
        self.work_time = work_time
        self.work = work
        self.log = log or structlog.get_logger("hello_server")
        self.faults = faults or Faults()
        self.fault_plan = FaultPlan(self.faults)
        self.load = load
        self.streams = streams or OpenStreams()

    async def _refuse(
        self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str
    ) -> None:
        """Abort with ``code``, naming this server in the trailer (with the load report, if
        any, which an explicit trailer would otherwise replace)."""
        metadata = self.load.trailer() if self.load is not None else ()
        await context.abort(
            code, details, (*metadata, (trailers.SERVER_ID_KEY, self.identity.server_id))
        )

    async def _inject_error(
        self, context: grpc.aio.ServicerContext, method: str, peer: str, **call: object
    ) -> None:
        """Answer with the configured error code if this call is one that must fail."""
        if self.fault_plan.next_fails():
            self.log.info(
                "rpc.faulted",
                method=method,
                code=self.faults.error_code,
                peer=peer,
                call=self.fault_plan.calls,
                **call,
            )
            await self._refuse(context, self.faults.status, "injected fault")

    @guarded
    async def Hello(  # noqa: N802 - the RPC's name, as generated
        self, request: hello_pb2.HelloRequest, context: grpc.aio.ServicerContext
    ) -> hello_pb2.HelloResponse:
        if self.load is None:
            return await self._hello(request, context)
        with self.load.measure(context):
            return await self._hello(request, context)

    async def _hello(
        self, request: hello_pb2.HelloRequest, context: grpc.aio.ServicerContext
    ) -> hello_pb2.HelloResponse:
        peer = context.peer()
        self.log.debug("rpc.received", client_id=request.client_id[:64], counter=request.counter)
        reason = validate(request)
        if reason is not None:
            self.log.warning(
                "rpc.invalid", reason=reason, peer=peer, client_id=request.client_id[:64]
            )
            await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, reason)
        await self._inject_error(
            context, "Hello", peer, client_id=request.client_id, counter=request.counter
        )

        started = time.perf_counter()
        delay = self.work_time + self.faults.latency
        if delay > 0:
            await self.work(delay)
        identity = self.identity
        response = hello_pb2.HelloResponse(
            server_id=identity.server_id,
            message=f"{identity.server_id}: Hello {request.client_id} #{request.counter}",
            request=request,
            server_pod_ip=identity.pod_ip,
            server_node=identity.node_name,
            server_address=identity.address,
            caller_address=peer,
        )
        self.log.info(
            "rpc.handled",
            client_id=request.client_id,
            counter=request.counter,
            peer=peer,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            fault_latency_ms=round(self.faults.latency * 1000, 3),
        )
        return response

    @guarded
    async def Ticks(  # noqa: N802 - the RPC's name, as generated
        self, request: hello_pb2.TicksRequest, context: grpc.aio.ServicerContext
    ) -> None:
        peer = context.peer()
        reason = validate_ticks(request)
        if reason is not None:
            self.log.warning(
                "rpc.invalid", reason=reason, peer=peer, client_id=request.client_id[:64]
            )
            await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, reason)
        await self._inject_error(
            context, "Ticks", peer, client_id=request.client_id, stream=request.stream
        )
        interval_ms = request.interval_ms or ticks.DEFAULT_INTERVAL_MS
        with self.streams.track():
            await self._stream(request, context, peer, interval_ms)
        # A clean end on purpose: status OK, and why in the trailer.
        context.set_trailing_metadata(((ticks.END_REASON_KEY, ticks.END_DRAIN),))

    async def _stream(
        self,
        request: hello_pb2.TicksRequest,
        context: grpc.aio.ServicerContext,
        peer: str,
        interval_ms: int,
    ) -> None:
        """Write ticks until the streams are closed; log how the stream went, however it ends."""
        identity = self.identity
        started = time.perf_counter()
        sent = 0
        end = STREAM_END_CANCELLED
        self.log.info(
            "rpc.stream_started",
            client_id=request.client_id,
            stream=request.stream,
            peer=peer,
            interval_ms=interval_ms,
        )
        try:
            closed = self.faults.latency > 0 and await self.streams.pause(self.faults.latency)
            while not closed and not self.streams.closing:
                sent += 1
                await context.write(
                    hello_pb2.TicksResponse(
                        server_id=identity.server_id,
                        stream=request.stream,
                        tick=sent,
                        server_pod_ip=identity.pod_ip,
                        server_node=identity.node_name,
                        server_address=identity.address,
                        caller_address=peer,
                    )
                )
                closed = await self.streams.pause(interval_ms / 1000)
            end = STREAM_END_DRAIN
        finally:
            self.log.info(
                "rpc.stream_ended",
                client_id=request.client_id,
                stream=request.stream,
                peer=peer,
                ticks=sent,
                seconds=round(time.perf_counter() - started, 3),
                end=end,
            )
