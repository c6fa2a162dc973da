"""The shared verdict and the expected checks, from hand-made log events."""

import json
import math

from hellolb_lab import catalogue, clientlog, judging, report, verdict
from hellolb_lab.phases import Reading
from hellolb_lab.phases import restart_control_plane as outage_phase
from hellolb_lab.phases.scale_proxies import NAME as SCALE_PROXIES
from hellolb_lab.phases.scale_proxies import ProxySplit

T0 = 1_700_000_000.0


def iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def responses(pattern: dict[float, list[str]], client: str = "c1") -> list[dict]:
    return [
        {"event": "client.response", "timestamp": iso(T0 + t), "client_id": client, "server_id": s}
        for t, servers in pattern.items()
        for s in servers
    ]


def expected(name: str, result, reach_bound_s=None):
    names = judging.check_names(catalogue.get(name))
    return judging.run_checks(names, result, reach_bound_s)


OLD = ["s1", "s2", "s3"]
ALL = [*OLD, "s4", "s5"]


def test_headless_shape_passes_and_names_idle_servers():
    events = responses({t: OLD for t in range(10)})
    answers = clientlog.answers_from_events(events)
    result = verdict.judge(
        "headless", answers, scale_at=T0 + 5, servers_before=OLD, servers_after=ALL
    )
    assert result.new_servers == ("s4", "s5")
    assert result.reached == {"s4": None, "s5": None}
    assert result.time_to_all_new is None
    assert result.balance_before.ratio == 1.0
    assert math.isinf(result.balance_after.ratio)
    assert all(c.ok for c in expected("headless", result))
    text = report.format_verdict(catalogue.get("headless"), result)
    assert "s4 never" in text


def test_reaching_new_servers_is_timed_from_the_scale_up():
    pattern = {t: OLD for t in range(5)} | {5: OLD, 6: [*OLD, "s4"], 7: ALL, 8: ALL, 9: ALL}
    answers = clientlog.answers_from_events(responses(pattern))
    result = verdict.judge(
        "maxage", answers, scale_at=T0 + 5, servers_before=OLD, servers_after=ALL
    )
    assert result.reached == {"s4": 1.0, "s5": 2.0}
    assert result.time_to_all_new == 2.0
    assert result.balance_after.ratio == 1.0
    assert all(c.ok for c in expected("maxage", result, reach_bound_s=3))
    late = expected("maxage", result, reach_bound_s=1.5)
    assert not next(c for c in late if c.name == "every new server reached").ok
    assert not all(c.ok for c in expected("headless", result))


def test_summaries_are_used_when_there_are_no_responses():
    events = [
        {
            "event": "client.summary",
            "timestamp": iso(T0 + 5),
            "client_id": "c1",
            "by_server_window": {"s1": 10, "s2": 10, "s3": 11},
            "errors_total_count": 0,
        },
        {
            "event": "client.summary",
            "timestamp": iso(T0 + 10),
            "client_id": "c1",
            "by_server_window": {"s1": 6, "s2": 6, "s3": 6, "s4": 6, "s5": 6},
            "errors_total_count": 2,
        },
        {"event": "client.config"},
    ]
    answers = clientlog.answers_from_events(events)
    assert sum(a.count for a in answers) == 61
    result = verdict.judge(
        "proxy", answers, scale_at=T0 + 7, failed_rpcs=clientlog.failed_rpcs(events)
    )
    assert result.new_servers == ("s4", "s5")
    assert result.time_to_all_new == 3.0
    got = {c.name: c.ok for c in expected("proxy", result)}
    assert got == {"answers": True, "no failed RPC": False, "every new server reached": True}


def test_clusterip_wants_one_server_per_client():
    events = responses({t: ["s2"] for t in range(6)}, "c1") + responses(
        {t: ["s5"] for t in range(6, 9)}, "c2"
    )
    result = verdict.judge("clusterip", clientlog.answers_from_events(events), scale_at=T0 + 3)
    assert result.servers_by_client == {"c1": ("s2",), "c2": ("s5",)}
    assert all(c.ok for c in expected("clusterip", result))
    mixed = responses({0: ["s1", "s2"]})
    bad = verdict.judge("clusterip", clientlog.answers_from_events(mixed), scale_at=None)
    assert not all(c.ok for c in expected("clusterip", bad))


def test_proxy_replica_checks_read_the_phase_finding():
    answers = clientlog.answers_from_events(responses({0: OLD, 2: ALL}))
    idle_then_busy = ProxySplit({"p2": 0, "p3": 0}, {"p2": 9, "p3": 4}, {})
    result = verdict.judge(
        "proxy",
        answers,
        scale_at=T0 + 1,
        servers_before=OLD,
        servers_after=ALL,
        findings={SCALE_PROXIES: idle_then_busy},
    )
    assert all(c.ok for c in expected("proxy", result, reach_bound_s=7))
    busy_early = ProxySplit({"p2": 3, "p3": 0}, {"p2": 9, "p3": 4}, {})
    result = verdict.judge("proxy", answers, scale_at=T0 + 1, findings={SCALE_PROXIES: busy_early})
    got = {c.name: c.ok for c in expected("proxy", result)}
    assert got["new proxy replicas idle until the client restarts"] is False
    assert got["new proxy replicas busy after the client restarts"] is True


def test_failed_rpcs_takes_cumulative_totals_per_client():
    events = [
        {"event": "client.summary", "client_id": "a", "errors_total_count": 1},
        {"event": "client.summary", "client_id": "a", "errors_total_count": 3},
        {"event": "client.summary", "client_id": "b", "errors_total_count": 1},
    ]
    assert clientlog.failed_rpcs(events) == 4
    assert clientlog.failed_rpcs([{"event": "client.error"}]) == 1


def test_to_dict_is_json():
    result = verdict.judge("headless", [], scale_at=T0, servers_before=OLD, servers_after=ALL)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["balance_after"]["ratio"] is None
    assert data["new_servers"] == ["s4", "s5"]


def test_servers_per_client_are_listed_where_connections_are_balanced():
    events = responses({0: ["s1"], 1: ["s1"]})
    result = verdict.judge("x", clientlog.answers_from_events(events), scale_at=None)
    assert "servers per client" in report.format_verdict(catalogue.get("clusterip"), result)
    assert "servers per client" not in report.format_verdict(catalogue.get("maxage"), result)


# -- the xDS control plane's outage ----------------------------------------------------------

FIVE = [*ALL]
SIX = [*ALL, "s6"]
#: Down from 10 s to 13 s (told to start again at 13 s, serving at 13.5 s); s6 added at 11 s.
OUTAGE = outage_phase.Outage(
    stopped=T0 + 10,
    restarting=T0 + 13,
    restarted=T0 + 13.5,
    known=tuple(FIVE),
    added=("s6",),
    bound_s=4.0,
)


def outage_checks(pattern: dict[float, list[str]]) -> dict[str, bool]:
    answers = clientlog.answers_from_events(responses(pattern))
    figures = outage_phase.measure(OUTAGE, Reading(responses(pattern)))
    result = verdict.judge(
        "xds",
        answers,
        scale_at=T0 + 5,
        servers_before=OLD,
        servers_after=FIVE,
        findings={outage_phase.NAME: figures},
    )
    return {c.name: c.ok for c in expected("xds", result, reach_bound_s=3)}


def test_the_outage_is_measured_between_stop_and_restart():
    pattern = {t: FIVE for t in range(5, 16)} | {t: SIX for t in (14, 15)}
    figures = outage_phase.measure(OUTAGE, Reading(responses(pattern)))
    assert figures.down_s == 3.5
    assert figures.known_while_down == dict.fromkeys(FIVE, 3)  # at 10, 11 and 12 s
    assert figures.added_while_down == {"s6": 0}
    assert figures.added_reached_s == {"s6": 0.5}


def test_the_outage_checks_pass_when_calls_go_on_and_the_added_server_joins_after():
    pattern = {t: FIVE for t in range(16)} | {t: SIX for t in (14, 15)}
    # Every check that has data passes; the rollout and the crash did not run.
    got = outage_checks(pattern)
    assert got == dict.fromkeys(
        ["answers", "no failed RPC", catalogue.NEW_SERVER_REACHED, *outage_phase.PHASE.functions],
        True,
    )


def test_calls_that_stop_while_the_control_plane_is_down_fail_the_check():
    pattern = {t: FIVE for t in [*range(10), 13, 14, 15]} | {t: SIX for t in (14, 15)}
    assert outage_checks(pattern)[outage_phase.CALLS_GO_ON] is False


def test_an_added_server_answering_while_the_control_plane_is_down_fails_the_check():
    # Only the control plane could have told the client about s6: a call to it while the
    # control plane was down means the measurement is wrong.
    pattern = {t: FIVE for t in range(16)} | {t: SIX for t in (12, 14, 15)}
    assert outage_checks(pattern)[outage_phase.FOUND_ONCE_BACK] is False


def test_an_added_server_reached_late_or_never_fails_the_check():
    late = {t: FIVE for t in range(20)} | {19: SIX}  # 5.5 s after the return; the bound is 4 s
    assert outage_checks(late)[outage_phase.FOUND_ONCE_BACK] is False
    never = {t: FIVE for t in range(20)}
    assert outage_checks(never)[outage_phase.FOUND_ONCE_BACK] is False


def test_without_an_outage_its_checks_are_left_out():
    answers = clientlog.answers_from_events(responses({t: FIVE for t in range(10)}))
    result = verdict.judge("xds", answers, scale_at=T0 + 5, servers_before=OLD)
    names = [c.name for c in expected("xds", result)]
    assert outage_phase.CALLS_GO_ON not in names
    assert outage_phase.FOUND_ONCE_BACK not in names
