import json

import pytest
from hello_client.channel import channel_options, proto_duration
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


def test_weighted_round_robin_gets_its_periods_and_penalty():
    config = service_config(
        LB_POLICY="weighted_round_robin",
        WRR_BLACKOUT_PERIOD="1.5s",
        WRR_WEIGHT_UPDATE_PERIOD="250ms",
        WRR_ERROR_UTILIZATION_PENALTY="0.5",
    )
    assert config["loadBalancingConfig"] == [
        {
            "weighted_round_robin": {
                "blackoutPeriod": "1.5s",
                "weightUpdatePeriod": "0.25s",
                "errorUtilizationPenalty": 0.5,
            }
        }
    ]
    assert config["healthCheckConfig"] == {"serviceName": "hellolb.v1.HelloService"}


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.0, "0s"), (10.0, "10s"), (0.1, "0.1s"), (0.001, "0.001s")]
)
def test_durations_take_the_json_form_of_protobuf(seconds, text):
    assert proto_duration(seconds) == text


def test_outlier_detection_wraps_the_chosen_policy():
    config = service_config(
        LB_POLICY="round_robin",
        OUTLIER_DETECTION="true",
        OUTLIER_INTERVAL="500ms",
        OUTLIER_EJECTION_TIME="20s",
        OUTLIER_FAILURE_PERCENTAGE="50",
        OUTLIER_MIN_CALLS="5",
    )
    assert config["loadBalancingConfig"] == [
        {
            "outlier_detection_experimental": {
                "interval": "0.5s",
                "baseEjectionTime": "20s",
                "failurePercentageEjection": {
                    "threshold": 50,
                    "enforcementPercentage": 100,
                    "minimumHosts": 2,
                    "requestVolume": 5,
                },
                "childPolicy": [{"round_robin": {}}],
            }
        }
    ]


def test_no_outlier_detection_unless_asked():
    assert service_config()["loadBalancingConfig"] == [{"round_robin": {}}]
