"""Each scenario's behaviour, from a real run: real servers, real DNS, real Envoy, real client.

Every run goes the whole timeline: the scale-up, the scenario's own phases, a rolling restart of
every server with the overlay's strategy and pod timings, and a crash. Phases are short; every
bound comes from the overlay's settings (max connection age, the client's re-resolution floor,
Envoy's DNS refresh rate), not from guesses.

The runs start together, each on its own loopback block, and each test waits for its own: a run
mostly waits (for a pause, a drain, a refresh) and uses a tenth of a core, so side by side they
take the time of the longest instead of the sum.
"""

import math
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from hello_client.runner import FAILED_ROUND_PAUSE
from hellolb_lab import chart, clientlog, timeline
from hellolb_lab.options import Net, Options
from hellolb_lab.phases import restart_control_plane, scale_proxies
from hellolb_lab.view import PUSH_MARK

pytestmark = pytest.mark.slow

OLD = {"server-1", "server-2", "server-3"}
NEW = ("server-4", "server-5")


def replacements(replicas: int) -> set[str]:
    """The servers a rollout of ``replicas`` servers starts, each a new pod."""
    return {f"server-{i}" for i in range(replicas + 1, 2 * replicas + 1)}


REPLACEMENTS = replacements(5)
#: Seconds one run may take, start to end, on a busy machine.
RUN_TIMEOUT_S = 110
#: Each scenario's run, and the loopback block it runs on.
RUNS = {
    "clusterip": ({}, 83),
    "headless": ({}, 84),
    "maxage": ({}, 85),
    "proxy": ({}, 86),
    "sidecar": ({}, 87),
    # grpc's re-resolution floor, far longer than the run: the client never looks again. (60 s
    # was not: on a busy machine the paced rollout alone took 51 s, and the floor passed.)
    "headless-floor": ({"DNS_MIN_TIME_BETWEEN_RESOLUTIONS": "3600s"}, 91),
    "xds": ({}, 92),
}
#: Stream-mode runs, side by side with the others: the server's settings for the run and the
#: loopback block. Maxage's age and grace are shortened, so streams are cut within the run.
STREAM_RUNS = {
    "clusterip-streams": ({}, 131),
    "maxage-streams": ({"MAX_CONNECTION_AGE": "3s", "MAX_CONNECTION_AGE_GRACE": "2s"}, 132),
    "sidecar-streams": ({}, 133),
}


def options(name, net, tmp_path, client_env):
    phases = ("rollout",) if client_env else None
    return Options(
        warmup=3,
        steady=2,
        idle=3,
        restart=3,
        settle=3,
        outage=2,
        headless_after=4,
        net=Net(net),
        log_dir=tmp_path / name,
        client_env=client_env,
        phases=phases,
    )


def stream_options(name, net, tmp_path, server_env):
    """A stream-mode run: the rollout and the crash, and a re-resolution floor under the
    shortened age, so that each age's GOAWAY looks the servers up again."""
    client_env = {"DNS_MIN_TIME_BETWEEN_RESOLUTIONS": "1s"} if server_env else {}
    return Options(
        warmup=3,
        steady=2,
        settle=3,
        headless_after=4,
        net=Net(net),
        log_dir=tmp_path / name,
        server_env=server_env,
        client_env=client_env,
        client_mode="streams",
        phases=("rollout", "crash"),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, lab_net):
    tmp_path = tmp_path_factory.mktemp("scenarios")
    with ThreadPoolExecutor(max_workers=len(RUNS) + len(STREAM_RUNS)) as pool:
        started = {
            name: pool.submit(
                timeline.run, name.split("-")[0], options(name, lab_net(n), tmp_path, env)
            )
            for name, (env, n) in RUNS.items()
        }
        for name, (env, n) in STREAM_RUNS.items():
            plan = stream_options(name, lab_net(n), tmp_path, env)
            started[name] = pool.submit(timeline.run, name.split("-")[0], plan)
        yield started


def result_of(runs: dict[str, Future], name: str, *, expected: bool = True):
    result = runs[name].result(timeout=RUN_TIMEOUT_S)
    if expected:
        failed = [c for c in result.checks if not c.ok]
        assert not failed, f"{failed}\nlogs: {result.log_dir}"
        assert result.verdict.failed_rpcs == 0
    return result


def rollout_of(result, replicas=5):
    d = result.verdict.findings["rollout"]
    assert d.failed == 0, f"{d}\nlogs: {result.log_dir}"
    assert set(d.reached) == replacements(replicas)
    stops = d.facts["stops"]
    assert len(stops) == replicas
    # every old server paused (preStop), got SIGTERM, drained and exited 0 within its grace
    assert all(s["exit_code"] == 0 and not s["killed"] for s in stops), stops
    assert all(s["sigterm_s"] >= 5.0 for s in stops), stops
    return d


def crash_of(result):
    d = result.verdict.findings["crash"]
    assert d.failed == 0, f"{d}\nlogs: {result.log_dir}"
    # no more calls are in flight than the client sends at once (CONCURRENCY)
    assert 0 <= d.facts["in_flight"] <= int(result.settings["client_env"]["CONCURRENCY"])
    return d


def test_clusterip_one_server_per_client_connection(runs):
    result = result_of(runs, "clusterip")
    v = result.verdict
    assert set(v.servers_by_client) == {"client-1", "client-2"}
    assert all(len(servers) == 1 for servers in v.servers_by_client.values())
    answered_before = [s for s, n in v.servers_before.items() if n]
    assert len(answered_before) == 1  # round_robin has one address: the virtual one
    # the rollout moves the one connection to one new server, the crash to another
    rollout = rollout_of(result)
    assert [len(s) for s in rollout.servers_by_client_after.values()] == [1]
    assert set(*rollout.servers_by_client_after.values()) <= REPLACEMENTS
    crash_of(result)


def test_headless_balanced_over_the_first_three_and_nothing_to_the_new(runs):
    result = result_of(runs, "headless")
    v = result.verdict
    assert set(v.servers_before) == OLD
    assert v.balance_before.ratio <= 1.5
    assert v.new_servers == NEW
    assert all(v.servers_after[s] == 0 for s in NEW)
    assert v.reached == {"server-4": None, "server-5": None}
    # the client looked the name up once, at the start, and not again until servers left
    assert result.picture.lookups
    assert all(t < v.scale_at for t in result.picture.lookups if t < v.end)
    # one server at a time (components/paced-rollout)
    facts = result.verdict.findings["rollout"].facts
    assert (facts["max_surge"], facts["max_unavailable"], facts["min_ready_s"]) == (1, 0, 4)
    # a rollout closes connections: afterwards the client uses every new server, evenly
    rollout = rollout_of(result)
    assert rollout.balance_after.balanced
    crash_of(result)


def test_headless_fails_calls_in_a_rollout_while_its_floor_forbids_a_new_lookup(runs):
    """Its old servers drain and stop, and the client may not resolve the name again."""
    result = result_of(runs, "headless-floor", expected=False)
    d = result.verdict.findings["rollout"]
    assert d.failed > 0
    assert set(d.failed_by_code) == {"UNAVAILABLE"}
    assert d.narrow_s > 0
    assert not any(d.reached.values())  # no new server ever answered
    failed = {c.name for c in result.checks if not c.ok}
    assert failed == {"no failed call in the rollout", "every server answers after the rollout"}


def test_maxage_reaches_all_five_within_the_derived_bound(runs):
    result = result_of(runs, "maxage")
    v = result.verdict
    env = result.settings["server_env"]
    assert env["MAX_CONNECTION_AGE"]
    assert env["MAX_CONNECTION_AGE_GRACE"]
    assert result.bound is not None
    assert v.time_to_all_new is not None
    assert v.time_to_all_new <= result.bound
    assert all(v.servers_after[s] > 0 for s in (*OLD, *NEW))
    # the new servers came with a re-resolution after the scale-up (a GOAWAY at max age)
    relookups = [t for t in result.picture.lookups if t > v.scale_at]
    assert relookups
    assert min(relookups) <= v.scale_at + v.time_to_all_new
    assert rollout_of(result).balance_after.balanced
    crash_of(result)


def test_proxy_reaches_all_five_and_new_proxies_idle_until_the_client_restarts(runs):
    result = result_of(runs, "proxy")
    v = result.verdict
    assert v.time_to_all_new is not None
    assert v.time_to_all_new <= result.bound
    split = scale_proxies.finding(v)
    assert split is not None
    assert split.before_restart == {"proxy-2": 0, "proxy-3": 0}
    assert all(n > 0 for n in split.after_restart.values())
    assert split.total["proxy-1"] > 0
    assert result.proxy_requests == split.total
    rollout_of(result)
    crash_of(result)


def test_sidecar_reaches_all_five_within_the_refresh_bound(runs):
    result = result_of(runs, "sidecar")
    v = result.verdict
    assert result.bound == result.settings["envoy_dns_refresh_s"] + 2.0
    assert v.time_to_all_new is not None
    assert v.time_to_all_new <= result.bound
    # Envoy finds the new servers at its DNS refresh, within the same bound of each start
    rollout = rollout_of(result)
    assert rollout.time_to_all_new is not None
    crash_of(result)


def test_xds_pushes_new_servers_and_rides_out_a_control_plane_restart(runs):
    result = result_of(runs, "xds")
    v = result.verdict
    assert result.bound == 1.0 + 2.0  # the push ceiling and the lab's margin
    assert v.time_to_all_new is not None
    assert v.time_to_all_new <= result.bound
    assert all(v.servers_after[s] > 0 for s in (*OLD, *NEW))
    # Every client got the scale-up as a push from the control plane, not by looking up a name.
    assert set(result.xds_push_ms) == {"client-1"}
    assert not result.picture.lookups
    outage = restart_control_plane.finding(v)
    assert outage is not None
    assert all(n > 0 for n in outage.known_while_down.values())
    assert outage.added_while_down == {"server-6": 0}
    reached = outage.added_reached_s["server-6"]
    assert reached is not None
    assert reached <= outage.bound_s
    labels = [label for _, label in result.marks]
    assert "xDS pushed 5 servers to client-1" in labels
    assert "xDS pushed 6 servers to client-1" in labels
    # the six servers (the sixth added in the outage) replaced, each pushed as it came and went
    rollout = rollout_of(result, replicas=6)
    assert rollout.balance_after.balanced
    crash_of(result)


# -- stream mode: what each scenario does to long-lived streams


def streams_of(runs, name):
    """The stream figures of a stream-mode run whose every stream check passed."""
    result = result_of(runs, name)
    assert result.checks, "a stream-mode run is judged"
    return result, result.verdict.streams


def rollout_streams(result, fig):
    """A rollout costs a reconnect, not an error: every slot holds a stream again, on the new
    servers, soon after its stream ended."""
    w = fig["windows"]["rollout"]
    assert w["errors"] == 0, f"{w}\nlogs: {result.log_dir}"
    assert sum(w["open_after"].values()) == fig["slots"]
    assert set(w["open_after"]) <= REPLACEMENTS
    # A slot whose open a stopping server refused waits at most 2 s before it tries again
    # (hello_client.runner.FAILED_ROUND_PAUSE); a busy machine gets as long again.
    assert w["reconnect_s_max"] is not None
    assert w["reconnect_s_max"] <= 2 * FAILED_ROUND_PAUSE[1], w
    return w


def test_clusterip_streams_share_one_server_and_move_only_with_it(runs):
    result, fig = streams_of(runs, "clusterip-streams")
    assert fig["slots"] == int(result.settings["client_env"]["CONCURRENCY"])
    ((server, held),) = fig["open_at_scale"].items()
    assert server in OLD
    assert held == fig["slots"]
    assert fig["open_after_scale"] == fig["open_at_scale"]
    assert not fig["moved"]
    w = rollout_streams(result, fig)
    assert set(w["ends"]) == {"OK (drain)"}
    assert len(w["open_after"]) == 1  # one connection again, to one new server
    crash = fig["windows"]["crash"]
    assert crash["killed_ends"] == {"UNAVAILABLE": crash["killed_held"]}
    assert crash["errors"] == 0


def test_maxage_streams_move_to_every_server_at_age_plus_grace(runs):
    result, fig = streams_of(runs, "maxage-streams")
    low, high = fig["cut_s"]
    # 3 s x 0.9 + 2 s, and 3 s x 1.1 + 2 s, each with the lab's 2 s margin
    assert (low, high) == (2.7, 7.3)
    assert set(fig["ended_before_phases"]) == {"UNAVAILABLE (max age)"}
    assert fig["first_lifetimes_s"]
    assert all(low <= t <= high for t in fig["first_lifetimes_s"])
    # reopened round the servers the client knows by then: the new ones too
    assert all(fig["opened_after_scale"].get(s) for s in NEW)
    rollout_streams(result, fig)


def test_sidecar_spreads_streams_keeps_them_and_a_crash_costs_errors(runs):
    result, fig = streams_of(runs, "sidecar-streams")
    assert set(fig["open_at_scale"]) == OLD
    assert fig["open_after_scale"] == fig["open_at_scale"]
    assert not fig["moved"]
    assert not any(fig["open_after_scale"].get(s) for s in NEW)
    w = rollout_streams(result, fig)
    assert set(w["ends"]) == {"OK (drain)"}
    # Envoy resets the client's stream when the server behind it dies: INTERNAL, an error.
    crash = fig["windows"]["crash"]
    assert crash["killed_held"] > 0
    assert crash["killed_ends"] == {"INTERNAL": crash["killed_held"]}
    assert crash["errors"] == crash["killed_held"]


@pytest.mark.parametrize("name", [*RUNS, *STREAM_RUNS])
def test_the_chart_of_a_run_is_its_clients_log_and_its_events(runs, name):
    """Drawn from the results the run saved beside its logs, the chart's lines hold every
    answer of the client's log in its second, its bars every failed call, and its marks stand
    at the run's events."""
    result = runs[name].result(timeout=RUN_TIMEOUT_S)
    results = chart.load(result.results_path)
    start, step = results["picture"]["start"], results["picture"]["step_s"]
    figure = chart.draw(chart.chart_data(results))
    events = [
        e
        for path in sorted(result.results_path.parent.glob("client-*.log"))
        for e in clientlog.json_lines(path.read_text())
    ]
    slices = len(results["picture"]["failed"])

    def slot(t):
        return min(int((t - start) // step), slices - 1)

    answered = Counter((a.server_id, slot(a.t)) for a in clientlog.answers_from_events(events))
    drawn_lines = [ln for ax in figure.axes for ln in ax.get_lines() if ln.get_gid()]
    servers = [ln for ln in drawn_lines if ln.get_gid() != "pushes"]
    for line in servers:
        drawn = {i: y for i, y in enumerate(line.get_ydata()) if not math.isnan(y)}
        logged = {i: n for (s, i), n in answered.items() if s == line.get_gid()}
        assert {i: y for i, y in drawn.items() if y} == logged, line.get_gid()
    assert {s for s, _ in answered} <= {line.get_gid() for line in servers}
    failed = Counter(slot(f.t) for f in clientlog.failures(events))
    bars = {round(p.get_x() / step): p.get_height() for p in figure.axes[-1].patches}
    assert bars == dict(failed)
    # the phases' marks lettered, the xDS control plane's pushes as ticks of their own
    marks = [t.xy[0] for t in figure.axes[0].texts if str(t.get_gid()).startswith("mark-")]
    pushes = [list(ln.get_xdata()) for ln in drawn_lines if ln.get_gid() == "pushes"]
    events = sorted(result.marks)
    pushed = [t - start for t, label in events if label.startswith(PUSH_MARK)]
    assert marks == pytest.approx(
        [t - start for t, label in events if not label.startswith(PUSH_MARK)], abs=0.001
    )
    assert pushes == ([pytest.approx(pushed, abs=0.001)] if pushed else [])
    assert bool(pushed) == name.startswith("xds")
