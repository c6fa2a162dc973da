"""Each scenario's behaviour, from a real run: real servers, real DNS, real Envoy, real client.

Phases are short; every bound comes from the overlay's settings (max connection age, the
client's re-resolution floor, Envoy's DNS refresh rate), not from guesses.
"""

import pytest
from hellolb_lab import timeline
from hellolb_lab.options import Net, Options

pytestmark = pytest.mark.slow

OLD = {"server-1", "server-2", "server-3"}
NEW = ("server-4", "server-5")


def run(name, net, tmp_path, **phases):
    options = Options(
        warmup=3,
        steady=2,
        idle=3,
        restart=3,
        headless_after=4,
        net=Net(net),
        log_dir=tmp_path / name,
        **phases,
    )
    result = timeline.run(name, options)
    failed = [c for c in result.checks if not c.ok]
    assert not failed, f"{failed}\nlogs: {result.log_dir}"
    assert result.verdict.failed_rpcs == 0
    return result


def test_clusterip_one_server_per_client_connection(tmp_path, lab_net):
    result = run("clusterip", lab_net(83), tmp_path)
    v = result.verdict
    assert set(v.servers_by_client) == {"client-1", "client-2"}
    assert all(len(servers) == 1 for servers in v.servers_by_client.values())
    answered_before = [s for s, n in v.servers_before.items() if n]
    assert len(answered_before) == 1  # round_robin has one address: the virtual one


def test_headless_balanced_over_the_first_three_and_nothing_to_the_new(tmp_path, lab_net):
    result = run("headless", lab_net(84), tmp_path)
    v = result.verdict
    assert set(v.servers_before) == OLD
    assert v.balance_before.ratio <= 1.5
    assert v.new_servers == NEW
    assert all(v.servers_after[s] == 0 for s in NEW)
    assert v.reached == {"server-4": None, "server-5": None}
    # the client looked the name up once, at the start, and never again
    assert result.picture.lookups
    assert all(t < v.scale_at for t in result.picture.lookups)


def test_maxage_reaches_all_five_within_the_derived_bound(tmp_path, lab_net):
    result = run("maxage", lab_net(85), tmp_path)
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


def test_proxy_reaches_all_five_and_new_proxies_idle_until_the_client_restarts(tmp_path, lab_net):
    result = run("proxy", lab_net(86), tmp_path)
    v = result.verdict
    assert v.time_to_all_new is not None
    assert v.time_to_all_new <= result.bound
    split = result.proxy_requests
    assert split["before_restart"] == {"proxy-2": 0, "proxy-3": 0}
    assert all(n > 0 for n in split["after_restart"].values())
    assert split["total"]["proxy-1"] > 0


def test_sidecar_reaches_all_five_within_the_refresh_bound(tmp_path, lab_net):
    result = run("sidecar", lab_net(87), tmp_path)
    v = result.verdict
    assert result.bound == result.settings["envoy_dns_refresh_s"] + 2.0
    assert v.time_to_all_new is not None
    assert v.time_to_all_new <= result.bound


def test_xds_pushes_new_servers_and_rides_out_a_control_plane_restart(tmp_path, lab_net):
    result = run("xds", lab_net(91), tmp_path, outage=2)
    v = result.verdict
    assert result.bound == 1.0 + 2.0  # the push ceiling and the lab's margin
    assert v.time_to_all_new is not None
    assert v.time_to_all_new <= result.bound
    assert all(v.servers_after[s] > 0 for s in (*OLD, *NEW))
    # Every client got the scale-up as a push from the control plane, not by looking up a name.
    assert set(v.extra["xds_push_ms"]) == {"client-1"}
    assert not result.picture.lookups
    outage = v.extra["control_plane_outage"]
    assert all(n > 0 for n in outage["known_while_down"].values())
    assert outage["added_while_down"] == {"server-6": 0}
    reached = outage["added_reached_s"]["server-6"]
    assert reached is not None
    assert reached <= outage["bound_s"]
    labels = [label for _, label in result.marks]
    assert "xDS pushed 5 servers to client-1" in labels
    assert "xDS pushed 6 servers to client-1" in labels
