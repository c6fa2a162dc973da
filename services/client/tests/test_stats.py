import random

import pytest
from hello_client.stats import Reservoir, Stats, percentile, shares


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_percentile_nearest_rank():
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_summary_counts_the_window_and_the_totals():
    clock = Clock()
    stats = Stats(clock=clock)
    for server, latency in [("a", 0.010), ("b", 0.020), ("a", 0.030)]:
        stats.answer(server, latency)
    stats.error("UNAVAILABLE")
    stats.round_done()
    clock.now += 5
    first = stats.summary()
    assert first["window_seconds"] == 5.0
    assert first["by_server_window"] == {"a": 2, "b": 1}
    assert first["answers_window"] == 3
    assert first["errors_window"] == {"UNAVAILABLE": 1}
    assert first["servers_window"] == 2
    assert (first["latency_ms_p50"], first["latency_ms_p99"]) == (20.0, 30.0)
    assert first["rounds_total"] == 1
    assert first["final"] is False

    stats.answer("c", 0.001)
    stats.error("DEADLINE_EXCEEDED")
    clock.now += 2
    second = stats.summary(final=True)
    assert second["by_server_window"] == {"c": 1}
    assert second["by_server_total"] == {"a": 2, "b": 1, "c": 1}
    assert second["answers_total"] == 4
    assert second["errors_window"] == {"DEADLINE_EXCEEDED": 1}
    assert second["errors_total"] == {"DEADLINE_EXCEEDED": 1, "UNAVAILABLE": 1}
    assert second["errors_total_count"] == 2
    assert (second["servers_window"], second["servers_total"]) == (1, 3)
    assert second["window_seconds"] == 2.0
    assert second["final"] is True


def test_an_empty_window_has_no_latency():
    summary = Stats(clock=Clock()).summary()
    assert summary["answers_window"] == 0
    assert summary["latency_ms_p50"] is None
    assert summary["by_server_window"] == {}


def test_latency_samples_stay_bounded_and_representative():
    stats = Stats(clock=Clock(), max_samples=1000, rng=random.Random(1))
    for n in range(100_000):
        stats.answer("a", n / 100_000)
    assert len(stats._latencies.values) == 1000
    summary = stats.summary()
    assert summary["answers_window"] == 100_000
    assert summary["latency_ms_p50"] == pytest.approx(500, abs=60)


def test_summary_reports_p90_shares_and_the_rate_of_the_window():
    clock = Clock()
    stats = Stats(clock=clock, mode="closed_loop")
    for n in range(1, 101):
        stats.answer("slow" if n % 4 == 0 else "fast", n / 1000)
    clock.now += 4
    summary = stats.summary()
    assert summary["mode"] == "closed_loop"
    assert (summary["latency_ms_p50"], summary["latency_ms_p90"], summary["latency_ms_p99"]) == (
        50.0,
        90.0,
        99.0,
    )
    assert summary["share_by_server_window"] == {"fast": 0.75, "slow": 0.25}
    assert summary["answers_per_second_window"] == 25.0


def test_total_percentiles_span_every_window():
    clock = Clock()
    stats = Stats(clock=clock)
    stats.answer("a", 0.010)
    stats.summary()
    stats.answer("a", 0.030)
    second = stats.summary()
    assert second["latency_ms_p50"] == 30.0
    assert (second["latency_ms_p50_total"], second["latency_ms_p99_total"]) == (10.0, 30.0)
    assert second["share_by_server_total"] == {"a": 1.0}


def test_a_tick_counts_as_an_answer_without_a_latency():
    stats = Stats(clock=Clock(), mode="streams")
    stats.count("s1")
    stats.count("s1")
    stats.latency(0.002)
    summary = stats.summary()
    assert summary["by_server_window"] == {"s1": 2}
    assert summary["latency_ms_p50"] == 2.0


def test_shares_of_nothing_are_empty():
    assert shares({}) == {}
    assert shares({"b": 1, "a": 2}) == {"a": 0.6667, "b": 0.3333}


def test_a_reservoir_keeps_everything_until_full():
    reservoir = Reservoir(3, random.Random(1))
    for value in (1.0, 2.0):
        reservoir.add(value)
    assert reservoir.values == [1.0, 2.0]
    for value in range(100):
        reservoir.add(float(value))
    assert len(reservoir.values) == 3
    assert reservoir.seen == 102


def test_errors_are_counted_per_server_when_the_server_named_itself():
    stats = Stats(clock=Clock())
    stats.error("INTERNAL", "s3")
    stats.error("INTERNAL", "s3")
    stats.error("UNAVAILABLE")
    summary = stats.summary()
    assert summary["errors_window"] == {"INTERNAL": 2, "UNAVAILABLE": 1}
    assert summary["errors_by_server_window"] == {"s3": 2}
    assert stats.summary()["errors_by_server_total"] == {"s3": 2}
