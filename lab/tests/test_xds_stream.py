"""The ADS stream state machine and the resources, message by message (no I/O)."""

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2
from hellolb_lab.xds import policies, stream
from hellolb_lab.xds.resources import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    Catalog,
    parse_service,
    split_name,
)

NAME = "server.lab:50051"
SERVICE = parse_service(f"{NAME}=server.lab")


def catalog(*ips, policy="round_robin"):
    return Catalog.build([SERVICE], {"server.lab": list(ips)}, policy)


def request(type_url, names=(NAME,), version="", nonce="", error=None, node="c1"):
    req = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=list(names), version_info=version, response_nonce=nonce
    )
    req.node.id = node
    if error is not None:
        req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return req


def unpack(response, cls):
    out = []
    for packed in response.resources:
        message = cls()
        assert packed.Unpack(message)
        out.append(message)
    return out


def endpoints(response):
    (cla,) = unpack(response, endpoint_pb2.ClusterLoadAssignment)
    return [lb.endpoint.address.socket_address.address for lb in cla.endpoints[0].lb_endpoints]


def subscribed(ads, type_url, cat):
    """Subscribe and ACK; return the accepted response."""
    (response,) = ads.on_request(request(type_url), cat).responses
    ack = ads.on_request(
        request(type_url, version=response.version_info, nonce=response.nonce), cat
    )
    assert ack.responses == []
    assert [e["event"] for e in ack.events] == [stream.ACK]
    return response


def test_listener_route_cluster_and_endpoints_chain_by_name():
    cat = catalog("127.0.0.2", "127.0.0.3")
    (lis,) = [cat.find(LISTENER, NAME)]
    manager = hcm_pb2.HttpConnectionManager()
    assert lis.api_listener.api_listener.Unpack(manager)
    assert manager.rds.route_config_name == NAME
    assert manager.rds.config_source.HasField("ads")
    assert manager.http_filters[-1].name == "envoy.filters.http.router"
    vhost = cat.find(ROUTE, NAME).virtual_hosts[0]
    assert {NAME, "server.lab"} <= set(vhost.domains)
    assert vhost.routes[-1].route.cluster == NAME
    cluster = cat.find(CLUSTER, NAME)
    assert cluster.type == cluster_pb2.Cluster.EDS
    assert cluster.eds_cluster_config.eds_config.HasField("ads")
    assert cluster.eds_cluster_config.service_name == NAME
    cla = cat.find(ENDPOINT, NAME)
    assert cla.cluster_name == NAME
    assert cla.endpoints[0].load_balancing_weight.value == 1
    ports = {lb.endpoint.address.socket_address.port_value for lb in cla.endpoints[0].lb_endpoints}
    assert ports == {50051}
    assert cat.find(LISTENER, "other.lab:50051") is None


def test_xdstp_names_keep_their_authority_down_the_chain():
    cat = catalog("127.0.0.2")
    name = f"xdstp://lab/envoy.config.listener.v3.Listener/{NAME}"
    manager = hcm_pb2.HttpConnectionManager()
    assert cat.find(LISTENER, name).api_listener.api_listener.Unpack(manager)
    route_name = manager.rds.route_config_name
    assert route_name == f"xdstp://lab/envoy.config.route.v3.RouteConfiguration/{NAME}"
    cluster_name = cat.find(ROUTE, route_name).virtual_hosts[0].routes[0].route.cluster
    eds_name = cat.find(CLUSTER, cluster_name).eds_cluster_config.service_name
    assert eds_name == f"xdstp://lab/envoy.config.endpoint.v3.ClusterLoadAssignment/{NAME}"
    assert cat.find(ENDPOINT, eds_name).cluster_name == eds_name
    # an xdstp name of another type names nothing
    assert split_name(LISTENER, route_name) == ("lab", "")
    assert cat.find(LISTENER, route_name) is None


@pytest.mark.parametrize(
    "text", ["server.lab=server.lab", "server.lab:50051", "server.lab:50051=", "x:1=y:z"]
)
def test_bad_service_arguments_say_what_is_expected(text):
    with pytest.raises(ValueError, match=r"LISTENER=ZONE_NAME|NAME:PORT|65535"):
        parse_service(text)


def test_service_port_defaults_to_the_listener_port():
    assert parse_service("server.ns:8080=Server.Lab.").port == 8080
    assert parse_service("server.ns:8080=server.lab:50051").port == 50051
    assert parse_service("server.ns:8080=Server.Lab.").zone_name == "server.lab"


def test_every_named_policy_builds_and_unknown_ones_are_refused():
    for name in policies.NAMES:
        config = policies.load_balancing_policy(name).policies[0].typed_extension_config
        assert config.name.startswith("envoy.load_balancing_policies.")
    with pytest.raises(ValueError, match="round_robin"):
        policies.load_balancing_policy("fastest")


def test_initial_request_is_answered_and_its_ack_is_not():
    ads = stream.AdsStream(1)
    step = ads.on_request(request(LISTENER), catalog("127.0.0.2"))
    (response,) = step.responses
    assert [e["event"] for e in step.events] == [stream.REQUEST, stream.PUSH]
    assert step.events[0]["kind"] == stream.INITIAL
    assert step.events[1]["node"] == "c1"
    (lis,) = unpack(response, listener_pb2.Listener)
    assert lis.name == NAME
    ack = ads.on_request(
        request(LISTENER, version=response.version_info, nonce=response.nonce, node=""),
        catalog("127.0.0.2"),
    )
    assert ack.responses == []
    assert ack.events[0]["node"] == "c1", "the node id of the first request names the stream"
    assert ack.events[0]["version"] == response.version_info


def test_nack_is_logged_with_its_reason_and_not_answered():
    ads = stream.AdsStream(1)
    cat = catalog("127.0.0.2")
    good = subscribed(ads, CLUSTER, cat)
    bad_cat = catalog("127.0.0.2", policy="maglev")
    (bad,) = ads.on_catalog(bad_cat).responses
    assert bad.version_info != good.version_info
    nack = ads.on_request(
        request(CLUSTER, version=good.version_info, nonce=bad.nonce, error="no supported policy"),
        bad_cat,
    )
    assert nack.responses == [], "the same resources would only be rejected again"
    (event,) = nack.events
    assert event["event"] == stream.NACK
    assert event["reason"] == "no supported policy"
    assert (event["version"], event["kept_version"]) == (bad.version_info, good.version_info)
    assert ads.accepted_versions()["CDS"] == good.version_info
    assert ads.on_catalog(bad_cat).responses == []
    (fixed,) = ads.on_catalog(cat).responses
    assert fixed.version_info == good.version_info


def test_stale_nonce_is_ignored():
    ads = stream.AdsStream(1)
    first = subscribed(ads, ENDPOINT, catalog("127.0.0.2"))
    (second,) = ads.on_catalog(catalog("127.0.0.2", "127.0.0.3")).responses
    (third,) = ads.on_catalog(catalog("127.0.0.2", "127.0.0.4")).responses
    late = ads.on_request(
        request(ENDPOINT, version=second.version_info, nonce=second.nonce), catalog("127.0.0.2")
    )
    assert late.responses == []
    assert late.events[0]["kind"] == stream.STALE
    assert first.nonce != second.nonce != third.nonce
    assert endpoints(third) == ["127.0.0.2", "127.0.0.4"]


def test_re_request_with_an_answered_nonce_is_answered_again():
    ads = stream.AdsStream(1)
    cat = catalog("127.0.0.2")
    accepted = subscribed(ads, ENDPOINT, cat)
    # Envoy re-creating a cluster: same names, same version, the nonce it already ACKed
    again = ads.on_request(
        request(ENDPOINT, version=accepted.version_info, nonce=accepted.nonce), cat
    )
    (response,) = again.responses
    assert again.events[0]["kind"] == stream.RE_REQUEST
    assert again.events[1]["reason"] == stream.RE_REQUEST
    assert response.version_info == accepted.version_info
    assert response.nonce != accepted.nonce
    assert endpoints(response) == ["127.0.0.2"]


def test_a_changed_subscription_in_an_ack_is_answered_with_the_new_names():
    other = parse_service("other.lab:50051=other.lab")
    cat = Catalog.build([SERVICE, other], {"server.lab": ["127.0.0.2"], "other.lab": ["127.0.0.9"]})
    ads = stream.AdsStream(1)
    (first,) = ads.on_request(request(ENDPOINT), cat).responses
    step = ads.on_request(
        request(
            ENDPOINT, names=(NAME, other.listener), version=first.version_info, nonce=first.nonce
        ),
        cat,
    )
    assert [e["event"] for e in step.events] == [stream.ACK, stream.PUSH]
    (response,) = step.responses
    names = sorted(c.cluster_name for c in unpack(response, endpoint_pb2.ClusterLoadAssignment))
    assert names == sorted([NAME, other.listener])


def test_wildcard_cluster_subscription_gets_every_service():
    other = parse_service("other.lab:50051=other.lab")
    cat = Catalog.build([SERVICE, other], {})
    ads = stream.AdsStream(1)
    (response,) = ads.on_request(request(CLUSTER, names=()), cat).responses
    assert sorted(c.name for c in unpack(response, cluster_pb2.Cluster)) == sorted(
        [NAME, other.listener]
    )
    # wildcard EDS does not exist: an empty EDS subscription gets nothing
    (eds,) = ads.on_request(request(ENDPOINT, names=()), cat).responses
    assert list(eds.resources) == []


def test_catalog_change_pushes_only_the_types_that_changed_clusters_first():
    ads = stream.AdsStream(1)
    cat = catalog("127.0.0.2")
    for type_url in (LISTENER, ROUTE, CLUSTER, ENDPOINT):
        subscribed(ads, type_url, cat)
    step = ads.on_catalog(catalog("127.0.0.2", "127.0.0.3"))
    assert [r.type_url for r in step.responses] == [ENDPOINT]
    assert step.events[0]["endpoints"] == {NAME: ["127.0.0.2:50051", "127.0.0.3:50051"]}
    step = ads.on_catalog(catalog("127.0.0.2", "127.0.0.3", policy="ring_hash"))
    assert [r.type_url for r in step.responses] == [CLUSTER]
    assert ads.on_catalog(catalog("127.0.0.2", "127.0.0.3", policy="ring_hash")).responses == []


def test_versions_depend_on_content_only_so_a_reconnect_can_be_compared():
    cat = catalog("127.0.0.2")
    one = subscribed(stream.AdsStream(1), ENDPOINT, cat)
    two = subscribed(stream.AdsStream(7), ENDPOINT, catalog("127.0.0.2"))
    assert one.version_info == two.version_info
    assert one.nonce != two.nonce
    reconnect = stream.AdsStream(8)
    step = reconnect.on_request(request(ENDPOINT, version=one.version_info), cat)
    assert len(step.responses) == 1, "a new stream always gets an answer, whatever it had"


def test_withdrawn_endpoints_leave_an_empty_assignment():
    ads = stream.AdsStream(1)
    subscribed(ads, ENDPOINT, catalog("127.0.0.2"))
    (response,) = ads.on_catalog(catalog()).responses
    (cla,) = unpack(response, endpoint_pb2.ClusterLoadAssignment)
    assert cla.cluster_name == NAME
    assert list(cla.endpoints) == []


def test_unknown_types_are_logged_and_ignored():
    step = stream.AdsStream(1).on_request(
        request("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"),
        catalog(),
    )
    assert step.responses == []
    assert step.events[0]["kind"] == stream.UNKNOWN_TYPE
