"""``xds:`` targets: accepted forms, and the bootstrap checked at start as gRPC reads it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import pytest
from hello_client.config import Balancing, ClientConfig
from hello_client.target import is_valid_target, split_xds
from hello_client.xds import BOOTSTRAP_CONFIG, BOOTSTRAP_FILE, NOT_APPLIED
from hellolb.config import ConfigError, Env

SERVER = {"server_uri": "127.0.0.1:1", "channel_creds": [{"type": "insecure"}]}
GOOD = {"xds_servers": [SERVER], "node": {"id": "c1"}}
TARGET = "xds:///server.lab:50051"


@pytest.mark.parametrize(
    ("target", "parts"),
    [
        ("xds:///server.lab:50051", (None, "server.lab:50051")),
        ("xds:///server.xds:50051", (None, "server.xds:50051")),
        ("xds://lab.example/server.lab:50051", ("lab.example", "server.lab:50051")),
        ("xds:server.lab:50051", (None, "server.lab:50051")),
        ("xds:///127.0.0.1:50051", (None, "127.0.0.1:50051")),
    ],
)
def test_accepted_xds_targets(target, parts):
    assert is_valid_target(target)
    assert split_xds(target) == parts


@pytest.mark.parametrize(
    "target",
    ["xds:///server.lab", "xds://server.lab:50051", "xds:///", "xds://a b/s:1", "xds:////s:1"],
)
def test_malformed_xds_targets(target):
    assert not is_valid_target(target)
    assert split_xds(target) is None


def settings(**env):
    return ClientConfig.from_env({"SERVER_ADDRESS": TARGET, **env}).xds


def test_a_bootstrap_file_gives_the_settings_the_log_shows(tmp_path):
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(GOOD))
    xds = settings(**{BOOTSTRAP_FILE: str(path)})
    assert (xds.listener, xds.authority, xds.bootstrap) == (
        "server.lab:50051",
        None,
        BOOTSTRAP_FILE,
    )
    assert (xds.bootstrap_file, xds.servers, xds.node_id) == (str(path), ("127.0.0.1:1",), "c1")
    assert xds.not_applied == NOT_APPLIED


class Reads(dict):
    """An empty environment that remembers which variables were looked up."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def get(self, name, default=None):
        self.names.add(name)
        return default


def test_every_balancing_setting_is_one_the_control_plane_overrides():
    # Every variable the balancing group reads, and the DNS floor, are named as not applied:
    # a new balancing setting that is not listed fails here.
    read = Reads()
    Balancing.from_env(Env(read))
    assert read.names
    assert set(NOT_APPLIED) == read.names | {"DNS_MIN_TIME_BETWEEN_RESOLUTIONS"}


def test_the_file_is_read_before_the_inline_json_as_grpc_does(tmp_path):
    with pytest.raises(ConfigError) as caught:
        settings(
            **{BOOTSTRAP_FILE: str(tmp_path / "missing.json"), BOOTSTRAP_CONFIG: json.dumps(GOOD)}
        )
    assert caught.value.variable == BOOTSTRAP_FILE
    assert "No such file" in caught.value.expected
    # gRPC takes an empty GRPC_XDS_BOOTSTRAP as a path too
    with pytest.raises(ConfigError) as caught:
        settings(**{BOOTSTRAP_FILE: "", BOOTSTRAP_CONFIG: json.dumps(GOOD)})
    assert caught.value.variable == BOOTSTRAP_FILE
    assert settings(**{BOOTSTRAP_CONFIG: json.dumps(GOOD)}).bootstrap == BOOTSTRAP_CONFIG


def test_a_missing_bootstrap_names_the_variable_and_both_ways_to_give_it():
    with pytest.raises(ConfigError) as caught:
        settings()
    assert caught.value.variable == BOOTSTRAP_FILE
    assert BOOTSTRAP_CONFIG in caught.value.expected


def test_a_folder_is_not_a_readable_bootstrap(tmp_path):
    with pytest.raises(ConfigError) as caught:
        settings(**{BOOTSTRAP_FILE: str(tmp_path)})
    assert (caught.value.variable, caught.value.value) == (BOOTSTRAP_FILE, str(tmp_path))


BAD = {
    "not json": "{bad",
    "not an object": "[]",
    "no servers": json.dumps({"xds_servers": []}),
    "no server_uri": json.dumps({"xds_servers": [{"channel_creds": [{"type": "insecure"}]}]}),
    "no channel_creds": json.dumps({"xds_servers": [{"server_uri": "127.0.0.1:1"}]}),
    "unknown creds": json.dumps(
        {"xds_servers": [{"server_uri": "127.0.0.1:1", "channel_creds": [{"type": "bogus"}]}]}
    ),
    "node not an object": json.dumps({**GOOD, "node": 3}),
}


@pytest.mark.parametrize("problem", BAD)
def test_a_bootstrap_grpc_cannot_use_is_a_configuration_error(problem):
    with pytest.raises(ConfigError) as caught:
        settings(**{BOOTSTRAP_CONFIG: BAD[problem]})
    assert (caught.value.variable, caught.value.value) == (BOOTSTRAP_CONFIG, BAD[problem])
    assert "xds_servers" in caught.value.expected


def test_an_authority_must_be_in_the_bootstrap():
    target = "xds://lab.example/server.lab:50051"
    with pytest.raises(ConfigError, match=r"lab\.example"):
        ClientConfig.from_env({"SERVER_ADDRESS": target, BOOTSTRAP_CONFIG: json.dumps(GOOD)})
    with_authority = {**GOOD, "authorities": {"lab.example": {}}}
    env = {"SERVER_ADDRESS": target, BOOTSTRAP_CONFIG: json.dumps(with_authority)}
    assert ClientConfig.from_env(env).xds.authority == "lab.example"


def test_other_targets_ignore_the_bootstrap_variables():
    env = {"SERVER_ADDRESS": "dns:///server:50051", BOOTSTRAP_FILE: "/nonexistent"}
    assert ClientConfig.from_env(env).xds is None


#: Asks gRPC itself what it makes of the bootstrap in the environment: one call, its error.
PROBE = """
import asyncio, sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
async def main():
    async with grpc.aio.insecure_channel(sys.argv[1]) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.aio.AioRpcError as error:
            print(error.details())
asyncio.run(main())
"""


def grpc_verdicts(cases):
    """gRPC's error for each ``(target, env)``, all probed at once in their own processes."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    running = [
        subprocess.Popen(
            [sys.executable, "-c", PROBE, target],
            env={**base, **env, "GRPC_VERBOSITY": "NONE"},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for target, env in cases
    ]
    return [p.communicate(timeout=60)[0] for p in running]


def test_grpc_itself_refuses_what_the_client_refuses_and_takes_what_it_takes(tmp_path):
    good_file = tmp_path / "good.json"
    good_file.write_text(json.dumps(GOOD))
    refused = [(TARGET, {BOOTSTRAP_CONFIG: text}) for text in BAD.values()]
    refused += [
        (TARGET, {}),
        (TARGET, {BOOTSTRAP_FILE: str(tmp_path / "missing.json")}),
        (TARGET, {BOOTSTRAP_FILE: "", BOOTSTRAP_CONFIG: json.dumps(GOOD)}),
        ("xds://lab.example/server.lab:50051", {BOOTSTRAP_CONFIG: json.dumps(GOOD)}),
    ]
    taken = [
        (TARGET, {BOOTSTRAP_FILE: str(good_file)}),
        (TARGET, {BOOTSTRAP_CONFIG: json.dumps(GOOD)}),
    ]
    verdicts = grpc_verdicts(refused + taken)
    for (target, env), verdict in zip(refused + taken, verdicts, strict=True):
        with pytest.raises(ConfigError) if (target, env) in refused else contextlib.nullcontext():
            ClientConfig.from_env({"SERVER_ADDRESS": target, **env})
        grpc_refused = "Failed to create XdsClient" in verdict or "authority not found" in verdict
        assert grpc_refused == ((target, env) in refused), (env, verdict)


def test_the_client_process_exits_2_naming_the_missing_bootstrap(spawn):
    client = spawn("hello_client", SERVER_ADDRESS=TARGET)
    assert client.wait(timeout=15) == 2
    (line,) = client.events
    assert (line["event"], line["variable"], line["value"]) == (
        "config.invalid",
        BOOTSTRAP_FILE,
        "",
    )


def test_the_client_log_says_which_settings_the_control_plane_decides(spawn):
    client = spawn(
        "hello_client",
        SERVER_ADDRESS=TARGET,
        GRPC_XDS_BOOTSTRAP_CONFIG=json.dumps(GOOD),
        LB_POLICY="pick_first",
        STARTUP_TIMEOUT="1ms",
    )
    config = client.wait_event("client.config", timeout=15)
    assert config["lb_policy"] == "pick_first"
    assert config["xds"]["not_applied"] == list(NOT_APPLIED)
    assert config["xds"]["servers"] == ["127.0.0.1:1"]
    assert client.wait(timeout=15) == 1
