"""The measurements of a phase in which servers leave, from hand-made answers and failures."""

import math

from hellolb_lab import clientlog, disruption, judging
from hellolb_lab.catalogue import get
from hellolb_lab.clientlog import Answer, Failure
from hellolb_lab.measure import Window
from hellolb_lab.verdict import judge

T0 = 1_700_000_000.0
OLD = ["s1", "s2", "s3"]
NEW = ["s4", "s5", "s6"]


def every_quarter(servers: list[str], start: float, end: float) -> list[Answer]:
    """Each of ``servers`` answers four times a second from ``start`` to ``end``."""
    steps = int((end - start) * 4)
    return [Answer(start + k / 4, s, 1, "c1") for k in range(steps) for s in servers]


def window(**facts) -> Window:
    return Window("rollout", T0, T0 + 8, T0 + 12, tuple(NEW), tuple(NEW), facts)


def test_a_smooth_rollout_costs_nothing_and_ends_balanced():
    answers = every_quarter(OLD, T0 - 3, T0 + 4) + every_quarter(NEW, T0 + 1, T0 + 12)
    d = disruption.judge(window(), answers, [])
    assert (d.seconds, d.failed, d.width, d.narrow_s) == (12, 0, 3, 0)
    assert d.reached == {"s4": 1.0, "s5": 1.0, "s6": 1.0}
    assert d.time_to_all_new == 1.0
    assert d.balance_after.ratio == 1.0
    assert d.servers_by_client_after == {"c1": ("s4", "s5", "s6")}


def test_seconds_on_fewer_servers_count_the_gap_and_the_narrow_ones():
    # the old servers drain one by one, then nothing answers for 2 s, then the new ones do
    answers = (
        every_quarter(OLD, T0 - 3, T0 + 2)
        + every_quarter(OLD[:1], T0 + 2, T0 + 4)
        + every_quarter(NEW, T0 + 6, T0 + 12)
    )
    failures = [Failure(T0 + 4.5, "UNAVAILABLE"), Failure(T0 + 5.5, "UNAVAILABLE")]
    d = disruption.judge(window(), answers, failures)
    assert d.width == 3
    assert d.narrow_s == 4  # two seconds on one server, two on none
    assert d.failed == 2
    assert d.failed_by_code == {"UNAVAILABLE": 2}


def test_failures_outside_the_window_are_not_the_phases():
    answers = every_quarter(OLD, T0 - 3, T0 + 12)
    outside = [Failure(T0 - 1, "UNAVAILABLE"), Failure(T0 + 12, "UNAVAILABLE")]
    assert disruption.judge(window(), answers, outside).failed == 0


def test_a_new_server_that_never_answers_leaves_the_balance_infinite():
    answers = every_quarter(OLD, T0 - 3, T0 + 4) + every_quarter(NEW[:2], T0 + 1, T0 + 12)
    d = disruption.judge(window(), answers, [])
    assert d.reached["s6"] is None
    assert d.time_to_all_new is None
    assert math.isinf(d.balance_after.ratio)
    assert d.to_dict()["balance_after"]["ratio"] is None


def verdict_with(d: disruption.Disruption):
    return judge("headless", [], scale_at=None, findings={d.phase: d})


def expected(scenario, result):
    return judging.run_checks(judging.check_names(scenario), result, None)


def test_the_checks_read_the_phases_measurements():
    answers = every_quarter(OLD, T0 - 3, T0 + 4) + every_quarter(NEW[:2], T0 + 1, T0 + 12)
    failures = [Failure(T0 + 2, "UNAVAILABLE")]
    result = verdict_with(disruption.judge(window(), answers, failures))
    found = {c.name: c for c in expected(get("headless"), result)}
    assert found["no failed call in the rollout"].ok is False
    assert found["every server answers after the rollout"].ok is False
    assert found["every server answers after the rollout"].detail == "idle: s6"
    assert "no failed call in the crash" not in found  # no crash in this run: no data


def test_a_crash_is_judged_against_the_calls_in_flight():
    crash = Window("crash", T0, T0 + 1, T0 + 4, tuple(OLD), facts={"killed": "s1", "in_flight": 4})
    d = disruption.judge(crash, every_quarter(OLD, T0 - 3, T0 + 4), [])
    found = {c.name: c for c in expected(get("maxage"), verdict_with(d))}
    assert found["no failed call in the crash"].ok
    assert (
        found["no failed call in the crash"].detail == "0 failed of 4 calls in flight when s1 died"
    )


def test_calls_in_flight_are_those_sent_before_and_ended_after():
    def line(event: str, end: float, latency_ms: float) -> dict:
        # timestamps as epoch seconds, which the reader takes as they are
        return {"event": event, "timestamp": end, "latency_ms": latency_ms, "server_id": "s1"}

    events = [
        line("client.response", T0 + 0.1, 200),  # sent at T0 - 0.1: in flight
        line("client.error", T0 + 0.3, 400),  # sent at T0 - 0.1: in flight
        line("client.limited", T0 + 0.2, 300),  # sent at T0 - 0.1: in flight, limited
        line("client.response", T0 - 0.05, 200),  # ended before
        line("client.response", T0 + 0.5, 200),  # sent after
    ]
    assert clientlog.calls_in_flight(events, T0) == 3
