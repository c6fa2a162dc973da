import grpc
import pytest
from hello_server.faults import ERROR_CODES, FaultPlan, Faults


def failing_calls(rate, calls):
    plan = FaultPlan(Faults(error_rate=rate))
    return [n for n in range(1, calls + 1) if plan.next_fails()]


@pytest.mark.parametrize("rate", [0.1, 0.25, 1 / 3, 0.5, 0.7, 0.9, 1.0])
def test_after_any_number_of_calls_exactly_the_rate_has_failed(rate):
    plan = FaultPlan(Faults(error_rate=rate))
    failed = 0
    for n in range(1, 1001):
        failed += plan.next_fails()
        assert failed == int(round(n * rate, 9)), (n, failed)


def test_failures_are_spread_evenly():
    assert failing_calls(0.25, 12) == [4, 8, 12]
    assert failing_calls(0.5, 6) == [2, 4, 6]
    assert failing_calls(1.0, 3) == [1, 2, 3]


def test_no_rate_no_failure_but_the_calls_are_counted():
    plan = FaultPlan(Faults())
    assert not any(plan.next_fails() for _ in range(100))
    assert plan.calls == 100


def test_every_code_but_ok_may_be_injected():
    assert "OK" not in ERROR_CODES
    assert len(ERROR_CODES) == len(grpc.StatusCode) - 1
    assert Faults(error_code="RESOURCE_EXHAUSTED").status is grpc.StatusCode.RESOURCE_EXHAUSTED
