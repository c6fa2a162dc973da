import asyncio

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata
from hello_client.retry import PUSHBACK_KEY, RpcRetry, pushback_seconds


def failure(code):
    return AioRpcError(code, Metadata(), Metadata(), details=code.name)


class Flaky:
    """Fails with the given codes, one per call, then answers."""

    def __init__(self, *codes):
        self.codes = list(codes)
        self.calls = 0

    async def __call__(self):
        self.calls += 1
        if self.codes:
            raise failure(self.codes.pop(0))
        return "answer"


def run(retry, fn):
    return asyncio.run(retry(fn))


def test_an_answered_call_is_tried_once():
    fn = Flaky()
    assert run(RpcRetry(3), fn) == "answer"
    assert fn.calls == 1


def test_unavailable_is_retried_until_answered():
    fn = Flaky(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    assert run(RpcRetry(3), fn) == "answer"
    assert fn.calls == 3


def test_cancelled_is_retried_like_unavailable():
    # A stopping server cancels the calls it received but had not started.
    fn = Flaky(grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert run(RpcRetry(3), fn) == "answer"
    assert fn.calls == 3


def test_the_attempts_bound_counts_the_first_try():
    fn = Flaky(*[grpc.StatusCode.UNAVAILABLE] * 5)
    with pytest.raises(AioRpcError) as caught:
        run(RpcRetry(3), fn)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert fn.calls == 3


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL],
)
def test_answers_with_other_errors_are_not_retried(code):
    fn = Flaky(code)
    with pytest.raises(AioRpcError):
        run(RpcRetry(3), fn)
    assert fn.calls == 1


def test_one_attempt_means_no_retry():
    fn = Flaky(grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(AioRpcError):
        run(RpcRetry(1), fn)
    assert fn.calls == 1


def test_a_retry_after_an_unavailable_then_other_error_stops():
    fn = Flaky(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)
    with pytest.raises(AioRpcError) as caught:
        run(RpcRetry(5), fn)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert fn.calls == 2


def limited(pushback=None):
    trailers = Metadata() if pushback is None else Metadata((PUSHBACK_KEY, pushback))
    return AioRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, Metadata(), trailers, details="limit")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("250", 0.25), ("0", 0.0), (None, None), ("-1", None), ("abc", None), ("1.5", None)],
)
def test_the_pushback_is_a_non_negative_whole_number_of_milliseconds(value, seconds):
    assert pushback_seconds(limited(value)) == seconds


class Limited:
    """Answers with the given errors, one per call, then answers."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "answer"


def test_a_limit_is_retried_only_with_a_pushback_within_the_cap():
    fn = Limited(limited("0"))
    assert run(RpcRetry(3, pushback_max=1.0), fn) == "answer"
    assert fn.calls == 2
    for error in (limited(), limited("-5"), limited("x"), limited("2000")):
        fn = Limited(error)
        with pytest.raises(AioRpcError):
            run(RpcRetry(3, pushback_max=1.0), fn)
        assert fn.calls == 1
