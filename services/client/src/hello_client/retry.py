"""The client's one retry layer: tenacity, on UNAVAILABLE and CANCELLED, and on a limit
(RESOURCE_EXHAUSTED) only when the server said when to come back.

A call is retried when no server handled it to the end: UNAVAILABLE (no connection, a
connection lost, a server refusing new calls, no address resolved yet) and CANCELLED (the
client never cancels its own calls, so this comes from a server that dropped the call while
stopping: grpc's server cancels every call it received but had not yet handed to a handler).
Retrying is safe because Hello is idempotent: a second try can at worst repeat work that
changes nothing. DEADLINE_EXCEEDED is not retried (the deadline is the call's whole budget),
nor is any error a server answered with (INVALID_ARGUMENT, INTERNAL, ...).

RESOURCE_EXHAUSTED is a limit, not a failure: retrying it at once is what turns a limit into a
retry storm. It is retried only when the answer carries the ``grpc-retry-pushback-ms`` trailer
with a wait the client accepts (at most ``pushback_max``), after exactly that wait, within the
same RPC_RETRIES attempts; otherwise the call ends *limited* and the caller's slot pauses
(:class:`hello_client.caller.Pacing`).
"""

from __future__ import annotations

import re
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
#: A limit (a rate limiter, a quota): counted as *limited*, never as failed.
LIMITED = grpc.StatusCode.RESOURCE_EXHAUSTED
#: gRFC A6, "Pushback" (https://github.com/grpc/proposal/blob/master/A6-client-retries.md):
#: a server may tell the client when to retry in this trailing metadata key. A non-negative
#: integer is the number of milliseconds to wait before the retry; a negative or malformed
#: value means "do not retry".
PUSHBACK_KEY = "grpc-retry-pushback-ms"
_PUSHBACK = re.compile(r"[0-9]{1,12}")


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in RETRYABLE


def is_limited(error: BaseException) -> bool:
    return isinstance(error, grpc.aio.AioRpcError) and error.code() == LIMITED


def pushback_seconds(error: BaseException | None) -> float | None:
    """The wait the server asked for in ``grpc-retry-pushback-ms`` (gRFC A6), in seconds;
    None when it sent none, or a negative or malformed value (both mean: do not retry)."""
    if not isinstance(error, grpc.aio.AioRpcError):
        return None
    return pushback_in(error.trailing_metadata())


def pushback_in(metadata: grpc.aio.Metadata | None) -> float | None:
    """:func:`pushback_seconds` from trailing metadata itself (a stream's, after its end)."""
    value = (metadata or {}).get(PUSHBACK_KEY)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str) or not _PUSHBACK.fullmatch(value.strip()):
        return None
    return int(value) / 1000


def is_startup_failure(error: BaseException) -> bool:
    return isinstance(error, grpc.aio.AioRpcError | NotServingError)


def retry_after(pushback_max: float) -> Callable[[BaseException], bool]:
    """Whether a try's error is retried: UNAVAILABLE or CANCELLED, or a limit whose pushback
    asks for a wait of at most ``pushback_max`` seconds."""

    def retried(error: BaseException) -> bool:
        if is_retryable(error):
            return True
        if not is_limited(error):
            return False
        pushback = pushback_seconds(error)
        return pushback is not None and pushback <= pushback_max

    return retried


def rpc_retrying(attempts: int, pushback_max: float = 0.0) -> AsyncRetrying:
    """Policy for one Hello call: up to ``attempts`` tries, short jittered backoff, or after
    a limit exactly the server's pushback."""
    backoff = wait_exponential_jitter(multiplier=0.02, max=0.5, jitter=0.02)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        pushback = pushback_seconds(error) if error is not None and is_limited(error) else None
        return backoff(state) if pushback is None else pushback

    return AsyncRetrying(
        retry=retry_if_exception(retry_after(pushback_max)),
        stop=stop_after_attempt(attempts),
        wait=wait,
        reraise=True,
    )


class RpcRetry:
    """Runs a call under :func:`rpc_retrying`, paying for tenacity only when a retry is due.

    The first try runs bare: tenacity's per-call bookkeeping costs more than the call itself
    on a fast network. When that try fails with a retryable code, tenacity takes over as if it
    had made it: same number of attempts, same backoff before the second one.
    """

    def __init__(self, attempts: int, pushback_max: float = 0.0) -> None:
        self.attempts = attempts
        self._retried = retry_after(pushback_max)
        self._retrying = rpc_retrying(attempts, pushback_max)

    async def __call__(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except grpc.aio.AioRpcError as error:
            if self.attempts == 1 or not self._retried(error):
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
