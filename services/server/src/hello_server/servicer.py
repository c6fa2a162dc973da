"""The Hello business logic: validate, simulate work, answer with the server's identity."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import structlog
from hellolb.v1 import hello_pb2, hello_pb2_grpc

MAX_CLIENT_ID_LENGTH = 128

Work = Callable[[float], Awaitable[None]]
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class ServerIdentity:
    """What a server says about itself in every answer."""

    server_id: str
    address: str
    pod_ip: str = ""
    node_name: str = ""


def validate(request: hello_pb2.HelloRequest) -> str | None:
    """Return why ``request`` is refused, or None when it is acceptable."""
    if not request.client_id:
        return "client_id is required"
    if len(request.client_id) > MAX_CLIENT_ID_LENGTH:
        return f"client_id is longer than {MAX_CLIENT_ID_LENGTH} characters"
    if not request.client_id.isprintable():
        return "client_id must be printable text"
    return None


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
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    return wrapper  # type: ignore[return-value]


class HelloServicer(hello_pb2_grpc.HelloServiceServicer):
    def __init__(
        self,
        identity: ServerIdentity,
        work_time: float,
        work: Work = asyncio.sleep,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.identity = identity
        self.work_time = work_time
        self.work = work
        self.log = log or structlog.get_logger("hello_server")

    @guarded
    async def Hello(  # noqa: N802 - the RPC's name, as generated
        self, request: hello_pb2.HelloRequest, context: grpc.aio.ServicerContext
    ) -> hello_pb2.HelloResponse:
        peer = context.peer()
        self.log.debug("rpc.received", client_id=request.client_id[:64], counter=request.counter)
        reason = validate(request)
        if reason is not None:
            self.log.warning(
                "rpc.invalid", reason=reason, peer=peer, client_id=request.client_id[:64]
            )
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, reason)

        started = time.perf_counter()
        if self.work_time > 0:
            await self.work(self.work_time)
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
        )
        return response
