import asyncio

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata
from hello_client.retry import RpcRetry


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
