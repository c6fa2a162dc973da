"""The client's one retry layer: tenacity, on UNAVAILABLE only.

Calls are retried when the server could not be reached (a connection was closing,
a server stopping, no address resolved yet), never when it answered with an error.
"""

from __future__ import annotations

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


class NotServingError(Exception):
    """The health service answered, but not with SERVING."""


def is_unavailable(error: BaseException) -> bool:
    return isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.UNAVAILABLE


def is_startup_failure(error: BaseException) -> bool:
    return isinstance(error, grpc.aio.AioRpcError | NotServingError)


def rpc_retrying(attempts: int) -> AsyncRetrying:
    """Policy for one Hello call: up to ``attempts`` tries, short jittered backoff."""
    return AsyncRetrying(
        retry=retry_if_exception(is_unavailable),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(initial=0.02, max=0.5, jitter=0.02),
        reraise=True,
    )


def startup_retrying(timeout: float, log: structlog.typing.FilteringBoundLogger) -> AsyncRetrying:
    """Policy for waiting for the server: exponential backoff with jitter, each try logged."""

    def log_attempt(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.info(
            "client.waiting",
            attempt=state.attempt_number,
            delay_seconds=round(state.upcoming_sleep, 3),
            error=_describe(error),
        )

    return AsyncRetrying(
        retry=retry_if_exception(is_startup_failure),
        stop=stop_after_delay(timeout),
        wait=wait_exponential_jitter(initial=0.1, max=5.0, jitter=0.2),
        before_sleep=log_attempt,
        reraise=True,
    )


def _describe(error: BaseException | None) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error)
