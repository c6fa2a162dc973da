import json

import pytest
from hello_client.channel import channel_options
from hello_client.config import ClientConfig


def service_config(**env):
    options = dict(channel_options(ClientConfig.from_env(env)))
    return json.loads(options["grpc.service_config"])


@pytest.mark.parametrize("policy", ["round_robin", "pick_first"])
def test_health_checking_watches_the_hello_service_by_default(policy):
    assert service_config(LB_POLICY=policy) == {
        "loadBalancingConfig": [{policy: {}}],
        "healthCheckConfig": {"serviceName": "hellolb.v1.HelloService"},
    }


def test_health_checking_can_be_turned_off():
    assert "healthCheckConfig" not in service_config(HEALTH_CHECK="false")


def test_grpc_retries_stay_off_whatever_the_settings():
    for env in ({}, {"HEALTH_CHECK": "false"}, {"RPC_RETRIES": "1"}):
        options = dict(channel_options(ClientConfig.from_env(env)))
        assert options["grpc.enable_retries"] == 0
        assert "retryPolicy" not in options["grpc.service_config"]
