"""The one reach bound: each rule of the catalogue, from the settings the services would parse."""

import pytest
from hellolb_lab import bounds, catalogue
from hellolb_lab.catalogue import Bound
from hellolb_lab.errors import LabError

MAXAGE = catalogue.get("maxage")
PROXY = catalogue.get("proxy")


def bound(scenario, server_env=None, client_env=None, **kw):
    return bounds.reach_bound(
        scenario, server_env=server_env or {}, client_env=client_env or {}, **kw
    )


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
