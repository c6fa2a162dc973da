"""The load a server reports, from a clock the test moves."""

import pytest
from hello_server.orca import TRAILER_KEY, LoadMeter
from xds.data.orca.v3 import orca_load_report_pb2


class Clock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


def meter(clock, cpu=None):
    return LoadMeter(clock=clock, cpu_clock=cpu or (lambda: 0.0), window=1.0, refresh=0.1)


def test_rate_errors_and_busy_time_over_the_window():
    clock = Clock()
    load = meter(clock)
    # Ten calls of 200 ms one after another, every other one failed: 10 calls/s, one call
    # in progress on average.
    for n in range(10):
        load.begin()
        clock.now += 0.1
        load.end(failed=n % 2 == 1)
    report = load.report()
    assert report.rps_fractional == pytest.approx(10.0)
    assert report.eps == pytest.approx(5.0)
    assert report.application_utilization == pytest.approx(1.0)


def test_a_slower_server_reports_more_utilization_at_the_same_rate():
    reports = {}
    for name, seconds in (("fast", 0.01), ("slow", 0.1)):
        clock = Clock()
        load = meter(clock)
        for _ in range(5):
            load.begin()
            clock.now += seconds
            load.end(failed=False)
            clock.now += 0.2 - seconds
        reports[name] = load.report()
    assert reports["fast"].rps_fractional == pytest.approx(reports["slow"].rps_fractional)
    assert reports["slow"].application_utilization == pytest.approx(
        10 * reports["fast"].application_utilization
    )


def test_calls_in_progress_count_toward_utilization_before_they_end():
    clock = Clock()
    load = meter(clock)
    load.begin()
    load.begin()
    clock.now += 0.5
    report = load.report()
    assert report.application_utilization == pytest.approx(2.0)
    assert report.rps_fractional == 0


def test_only_the_last_window_counts():
    clock = Clock()
    load = meter(clock)
    for _ in range(50):
        load.begin()
        load.end(failed=True)
    for _ in range(30):
        clock.now += 0.1
        load.report()
    assert load.report().eps == 0
    assert load.report().rps_fractional == 0


def test_cpu_utilization_is_cpu_seconds_per_second():
    clock, cpu = Clock(), Clock(5.0)
    load = meter(clock, cpu)
    clock.now += 1.0
    cpu.now += 0.25
    assert load.report().cpu_utilization == pytest.approx(0.25)


def test_the_trailer_is_a_serialized_report_rebuilt_at_most_every_refresh():
    clock = Clock()
    load = meter(clock)
    ((key, first),) = load.trailer()
    assert key == TRAILER_KEY == "endpoint-load-metrics-bin"
    load.begin()
    load.end(failed=False)
    assert load.trailer() == ((key, first),)  # not yet 100 ms later
    clock.now += 0.15
    ((_, value),) = load.trailer()
    report = orca_load_report_pb2.OrcaLoadReport.FromString(value)
    assert report.rps_fractional > 0


class Context:
    """Records the trailing metadata a handler sets, as grpc.aio's context would keep it."""

    def __init__(self):
        self.trailers = []

    def set_trailing_metadata(self, metadata):
        self.trailers.append(metadata)


def test_measure_attaches_the_report_first_and_again_at_the_end():
    clock = Clock()
    load = meter(clock)
    context = Context()
    with load.measure(context):
        clock.now += 0.2
    assert len(context.trailers) == 2
    ((key, value),) = context.trailers[1]
    assert key == TRAILER_KEY
    assert orca_load_report_pb2.OrcaLoadReport.FromString(value).rps_fractional == pytest.approx(
        5.0
    )


def test_measure_counts_a_call_that_raises_as_failed_and_keeps_the_first_report():
    clock = Clock()
    load = meter(clock)
    context = Context()

    def aborted_call():
        with load.measure(context):
            clock.now += 0.2
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        aborted_call()
    assert len(context.trailers) == 1
    assert load.report().eps == pytest.approx(5.0)
