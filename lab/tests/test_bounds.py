"""The one reach bound: each rule of the catalogue, from the settings the services would parse."""

import pytest
from hellolb_lab import bounds, catalogue
from hellolb_lab.catalogue import Bound
from hellolb_lab.errors import LabError
from hellolb_lab.xds import watch

MAXAGE = catalogue.get("maxage")
PROXY = catalogue.get("proxy")


def bound(scenario, server_env=None, client_env=None, **kw):
    server = bounds.server_settings(scenario.name, server_env or {})
    client = bounds.client_settings(scenario.name, client_env or {})
    return bounds.reach_bound(scenario, server=server, client=client, **kw)


def test_max_age_rule_follows_the_age_and_the_resolution_floor():
    server = {"MAX_CONNECTION_AGE": "10s"}
    assert bound(MAXAGE, server, {"DNS_MIN_TIME_BETWEEN_RESOLUTIONS": "5s"}) == 18.0
    # the client's default floor (30 s) when the overlay sets none
    assert bound(MAXAGE, server) == 10 * 1.1 + 30 + 2
    assert bound(MAXAGE, server, margin_s=bounds.CLUSTER_MARGIN_S) == 10 * 1.1 + 30 + 5


def test_max_age_rule_needs_a_valid_age():
    with pytest.raises(LabError, match="no MAX_CONNECTION_AGE"):
        bound(MAXAGE)
    with pytest.raises(LabError, match="MAX_CONNECTION_AGE"):
        bound(MAXAGE, {"MAX_CONNECTION_AGE": "ten seconds"})


def test_envoy_rule_follows_the_refresh_rate():
    assert bound(PROXY, dns_refresh_s=1) == 3.0
    config = {"static_resources": {"clusters": [{"type": "STRICT_DNS", "dns_refresh_rate": "2s"}]}}
    assert bound(PROXY, envoy_config=config) == 4.0
    with pytest.raises(LabError, match="no Envoy config"):
        bound(PROXY)


def test_scenarios_without_a_bound_and_the_control_plane_rule():
    assert bound(catalogue.get("headless")) is None
    assert bound(catalogue.get("clusterip")) is None
    linkerd = catalogue.get("linkerd")
    assert bound(linkerd, margin_s=5) == bounds.CONTROL_PLANE_PUSH_S + 5


def test_the_rules_texts_state_the_constants():
    assert f"x {bounds.MAX_AGE_JITTER:g}" in Bound.MAX_AGE.value
    assert f"{bounds.CONTROL_PLANE_PUSH_S:g} s" in Bound.CONTROL_PLANE.value


def test_the_xds_push_rule_in_the_lab_and_on_a_cluster():
    xds = catalogue.get("xds")
    assert bound(xds) == bounds.XDS_PUSH_S + bounds.LAB_MARGIN_S
    assert bound(xds, margin_s=bounds.CLUSTER_MARGIN_S) == bounds.XDS_PUSH_S + 5
    assert f"{bounds.XDS_PUSH_S:g} s" in Bound.XDS_PUSH.value


def test_the_push_ceiling_covers_the_lab_control_planes_slowest_way_to_notice_a_change():
    assert bounds.XDS_PUSH_S >= watch.SAFETY_POLL_S


@pytest.mark.parametrize(
    ("outage", "step"),
    [
        # gRPC's backoff steps, each as short as the jitter allows: 0.8, 1.28, 2.05, 3.28 s...
        (0.5, 1.0),  # within the first step
        (0.8, 1.0),
        (2.0, 1.6),  # ends in the second (0.8 to 2.08 s)
        (3.0, 2.56),  # the third (2.08 to 4.13 s)
        (10.0, 1.6**4),  # the fifth (7.41 to 12.65 s)
        (10_000.0, bounds.BACKOFF_MAX_S),  # long since capped
    ],
)
def test_the_reconnection_wait_is_the_longest_backoff_step_the_outage_can_end_in(outage, step):
    assert bounds.reconnect_wait(outage) == round(step * (1 + bounds.BACKOFF_JITTER), 3)


def test_the_rejoin_bound_grows_with_the_outage_and_adds_the_push_and_the_margin():
    waits = [bounds.reconnect_wait(s) for s in (1, 3, 10, 30, 100)]
    assert waits == sorted(waits)
    assert bounds.rejoin_bound(3.0) == round(bounds.reconnect_wait(3.0) + 1 + 2, 3)
    assert bounds.rejoin_bound(3.0, margin_s=5) == round(bounds.reconnect_wait(3.0) + 1 + 5, 3)
