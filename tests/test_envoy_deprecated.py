"""No field of the proxy and sidecar Envoy configurations is deprecated in Envoy's API.

Each configuration is parsed into Envoy's own ``Bootstrap`` message (the protos of
``xds-protos``, from envoyproxy/envoy ``api/``), the ``typed_config`` of every extension
unpacked into its own message, and every field set anywhere is looked up in its descriptor:
a field marked ``deprecated`` there (``dns_refresh_rate`` in ``Cluster``, since v3.0) keeps
working in Envoy 1.40 but logs a warning and may go in a later release.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from envoy.config.bootstrap.v3 import bootstrap_pb2
from google.protobuf import json_format, symbol_database
from google.protobuf.message import Message

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("proxy", "sidecar")
#: The extensions the configurations name in `typed_config`: importing them registers their
#: messages, so that `ParseDict` and `Any.Unpack` can find them.
EXTENSIONS = (
    "envoy.extensions.access_loggers.stream.v3.stream_pb2",
    "envoy.extensions.filters.http.router.v3.router_pb2",
    "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2",
    "envoy.extensions.retry.host.previous_hosts.v3.previous_hosts_pb2",
    "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
)
for _module in EXTENSIONS:
    importlib.import_module(_module)


def deprecated_fields(message: Message, path: str = "") -> list[str]:
    """The dotted path of every field set in ``message`` (and below) that its proto marks
    deprecated, ``Any`` payloads included."""
    found = []
    for field, value in message.ListFields():
        here = f"{path}.{field.name}"
        if field.GetOptions().deprecated:
            found.append(here)
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            children = list(value.values())
        elif field.is_repeated:
            children = list(value)
        else:
            children = [value]
        for child in children:
            if not isinstance(child, Message):
                continue
            if child.DESCRIPTOR.full_name == "google.protobuf.Any":
                inner = symbol_database.Default().GetSymbol(child.TypeName())()
                child.Unpack(inner)
                child = inner
            found += deprecated_fields(child, here)
    return found


def bootstrap(scenario: str) -> Message:
    config = yaml.safe_load((ROOT / "k8s" / "overlays" / scenario / "envoy.yaml").read_text())
    return json_format.ParseDict(config, bootstrap_pb2.Bootstrap())


@pytest.mark.parametrize("scenario", CONFIGS)
def test_no_deprecated_envoy_field(scenario):
    assert deprecated_fields(bootstrap(scenario)) == []


def test_the_check_sees_a_deprecated_field_of_a_cluster():
    message = bootstrap("proxy")
    message.static_resources.clusters[0].dns_refresh_rate.FromSeconds(5)
    assert deprecated_fields(message) == [".static_resources.clusters.dns_refresh_rate"]


def test_the_check_sees_a_deprecated_field_inside_a_typed_config():
    message = bootstrap("proxy")
    listener = message.static_resources.listeners[0]
    any_config = listener.filter_chains[0].filters[0].typed_config
    manager = symbol_database.Default().GetSymbol(any_config.TypeName())()
    any_config.Unpack(manager)
    # Deprecated in HttpConnectionManager since v3 (its replacement is `internal_address_config`
    # and friends); any deprecated field there will do.
    names = [f.name for f in manager.DESCRIPTOR.fields if f.GetOptions().deprecated]
    assert names, "HttpConnectionManager has no deprecated field left to try"
    field = manager.DESCRIPTOR.fields_by_name[names[0]]
    if field.message_type is not None:
        getattr(manager, field.name).SetInParent()
    elif field.type == field.TYPE_BOOL:
        setattr(manager, field.name, True)
    else:
        pytest.skip(f"{field.name} is neither a message nor a bool")
    any_config.Pack(manager)
    assert f".typed_config.{field.name}" in " ".join(deprecated_fields(message))
