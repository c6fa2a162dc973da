"""The client's one retry layer: tenacity, on UNAVAILABLE and CANCELLED.

A call is retried when no server handled it to the end: UNAVAILABLE (no connection, a
connection lost, a server refusing new calls, no address resolved yet) and CANCELLED (the
client never cancels its own calls, so this comes from a server that dropped the call while
stopping: grpc's server cancels every call it received but had not yet handed to a handler).
Retrying is safe because Hello is idempotent: a second try can at worst repeat work that
changes nothing. DEADLINE_EXCEEDED is not retried (the deadline is the call's whole budget),
nor is any error a server answered with (INVALID_ARGUMENT, INTERNAL, ...).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from hello_client import events

T = TypeVar("T")


class NotServingError(Exception):
    """The health service answered, but not with SERVING."""


RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in RETRYABLE


def is_startup_failure(error: BaseException) -> bool:
    return isinstance(error, grpc.aio.AioRpcError | NotServingError)


def rpc_retrying(attempts: int) -> AsyncRetrying:
    """Policy for one Hello call: up to ``attempts`` tries, short jittered backoff."""
    return AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=0.02, max=0.5, jitter=0.02),
        reraise=True,
    )


class RpcRetry:
    """Runs a call under :func:`rpc_retrying`, paying for tenacity only when a retry is due.

    The first try runs bare: tenacity's per-call bookkeeping costs more than the call itself
    on a fast network. When that try fails with a retryable code, tenacity takes over as if it
    had made it: same number of attempts, same backoff before the second one.
    """

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        self._retrying = rpc_retrying(attempts)

    async def __call__(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except grpc.aio.AioRpcError as error:
            if self.attempts == 1 or not is_retryable(error):
                raise
            first_failure: BaseException | None = error

        async def attempt() -> T:
            nonlocal first_failure
            if first_failure is not None:
                failure, first_failure = first_failure, None
                raise failure
            return await fn()

        return await self._retrying.wraps(attempt)()


def startup_retrying(timeout: float, log: structlog.typing.FilteringBoundLogger) -> AsyncRetrying:
    """Policy for waiting for the server: exponential backoff with jitter, each try logged."""

    def log_attempt(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.info(
            events.WAITING,
            attempt=state.attempt_number,
            delay_seconds=round(state.upcoming_sleep, 3),
            error=_describe(error),
        )

    return AsyncRetrying(
        retry=retry_if_exception(is_startup_failure),
        stop=stop_after_delay(timeout),
        wait=wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.2),
        before_sleep=log_attempt,
        reraise=True,
    )


def _describe(error: BaseException | None) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error)
