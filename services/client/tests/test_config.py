import pytest
import structlog
from hello_client.app import loop_for
from hello_client.closedloop import ClosedLoop
from hello_client.config import Balancing, ClientConfig
from hello_client.rounds import RoundLoop
from hello_client.streams import StreamLoop
from hello_client.target import is_valid_target
from hellolb.config import ConfigError, Env


def test_defaults():
    config = ClientConfig.from_env({})
    assert config.server_address == "localhost:50051"
    assert config.concurrency == 10
    assert config.lb_policy == "round_robin"
    assert config.health_check is True
    assert config.rpc_timeout == 5.0
    assert config.dns_min_time_between_resolutions == 30.0
    assert config.summary_interval == 5.0
    assert (config.max_rounds, config.max_duration) == (0, 0.0)
    assert config.log_responses is True
    assert config.mode == "rounds"
    assert config.tick_interval == 1.0
    assert (config.limit_backoff, config.limit_backoff_max) == (0.1, 5.0)
    assert (config.wrr_blackout_period, config.wrr_weight_update_period) == (10.0, 1.0)
    assert config.wrr_error_utilization_penalty == 1.0
    assert config.outlier_detection is False
    assert (config.outlier_interval, config.outlier_ejection_time) == (10.0, 30.0)
    assert (config.outlier_failure_percentage, config.outlier_min_calls) == (85, 50)


@pytest.mark.parametrize(
    ("mode", "loop"),
    [
        ("rounds", RoundLoop),
        ("closed_loop", ClosedLoop),
        ("streams", StreamLoop),
        ("Streams", StreamLoop),
    ],
)
def test_client_mode_chooses_the_loop(mode, loop):
    config = ClientConfig.from_env({"CLIENT_MODE": mode})
    assert config.mode == mode.lower()
    run = loop_for(config, stub=None, log=structlog.get_logger())
    assert type(run.__self__) is loop


def test_the_balancing_settings_are_one_group_logged_flat_as_before():
    env = {"LB_POLICY": "weighted_round_robin", "OUTLIER_DETECTION": "true"}
    config = ClientConfig.from_env(env)
    assert config.balancing == Balancing.from_env(Env(env))
    fields = config.as_log_fields()
    assert "balancing" not in fields
    for name, value in vars(config.balancing).items():
        assert fields[name] == value == getattr(config, name)
    assert (fields["lb_policy"], fields["outlier_detection"]) == ("weighted_round_robin", True)


def test_stream_and_weighted_round_robin_settings():
    config = ClientConfig.from_env(
        {
            "TICK_INTERVAL": "10ms",
            "LB_POLICY": "weighted_round_robin",
            "WRR_BLACKOUT_PERIOD": "0",
            "WRR_WEIGHT_UPDATE_PERIOD": "100ms",
            "WRR_ERROR_UTILIZATION_PENALTY": "2.5",
        }
    )
    assert config.tick_interval == 0.01
    assert config.lb_policy == "weighted_round_robin"
    assert (config.wrr_blackout_period, config.wrr_weight_update_period) == (0.0, 0.1)
    assert config.wrr_error_utilization_penalty == 2.5


def test_client_id_comes_from_pod_name_unless_set():
    assert ClientConfig.from_env({"POD_NAME": "client-x"}).client_id == "client-x"
    assert ClientConfig.from_env({"POD_NAME": "client-x", "CLIENT_ID": "c"}).client_id == "c"


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("off", False), ("1", True)])
def test_health_check_is_a_boolean(value, expected):
    assert ClientConfig.from_env({"HEALTH_CHECK": value}).health_check is expected


@pytest.mark.parametrize(
    "target",
    [
        "server:50051",
        "dns:///server:50051",
        "dns:///server.headless.svc.cluster.local:50051",
        "dns://127.0.0.1:5353/server.lab:50051",
        "dns:server:50051",
        "ipv4:127.0.0.2:50051",
        "ipv4:127.0.0.2:50051,127.0.0.3:50051,127.0.0.4:50051",
        "ipv6:[::1]:50051",
        "[::1]:50051",
        "unix:/tmp/hello.sock",
        "localhost:1",
    ],
)
def test_accepted_targets(target):
    assert is_valid_target(target)
    assert ClientConfig.from_env({"SERVER_ADDRESS": target}).server_address == target


@pytest.mark.parametrize(
    "target",
    [
        "server",
        "server:",
        "server:port",
        "server:0",
        "server:65536",
        "dns://server:50051",
        "dns:///server",
        "dns://not a host/server:1",
        "ipv4:server:50051",
        "ipv4:127.0.0.1",
        "ipv4:127.0.0.1:50051,",
        "ipv6:::1:50051",
        "http://server:50051",
        "ser ver:50051",
        "-server:50051",
        "unix:",
    ],
)
def test_malformed_targets(target):
    assert not is_valid_target(target)
    with pytest.raises(ConfigError) as caught:
        ClientConfig.from_env({"SERVER_ADDRESS": target})
    assert caught.value.variable == "SERVER_ADDRESS"
    assert "dns:///host:port" in caught.value.expected


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CONCURRENCY", "ten", "a whole number from 1 to 10000"),
        ("CONCURRENCY", "0", "a whole number from 1 to 10000"),
        ("CONCURRENCY", "-3", "a whole number from 1 to 10000"),
        ("LB_POLICY", "random", "one of round_robin, pick_first, weighted_round_robin"),
        ("LB_POLICY", "least_request", "one of round_robin, pick_first, weighted_round_robin"),
        ("CLIENT_MODE", "load", "one of rounds, closed_loop, streams"),
        ("CLIENT_MODE", "stream", "one of rounds, closed_loop, streams"),
        ("TICK_INTERVAL", "5ms", "at least 10ms, at most 3600s"),
        ("TICK_INTERVAL", "2h", "at least 10ms, at most 3600s"),
        ("TICK_INTERVAL", "1", "a duration"),
        ("WRR_BLACKOUT_PERIOD", "soon", "a duration"),
        ("WRR_WEIGHT_UPDATE_PERIOD", "50ms", "at least 100ms"),
        ("WRR_ERROR_UTILIZATION_PENALTY", "-1", "a number from 0 to 1000"),
        ("WRR_ERROR_UTILIZATION_PENALTY", "high", "a number from 0 to 1000"),
        ("OUTLIER_DETECTION", "perhaps", "true or false"),
        ("OUTLIER_INTERVAL", "0", "at least 1ms"),
        ("OUTLIER_EJECTION_TIME", "30", "a duration"),
        ("OUTLIER_FAILURE_PERCENTAGE", "0", "a whole number from 1 to 100"),
        ("OUTLIER_FAILURE_PERCENTAGE", "101", "a whole number from 1 to 100"),
        ("OUTLIER_MIN_CALLS", "0", "a whole number from 1 to 1000000"),
        ("RPC_TIMEOUT", "-1s", "a duration such as 250ms, 10s, 1.5m or 2h (or 0), at least 1ms"),
        ("RPC_TIMEOUT", "0", "a duration such as 250ms, 10s, 1.5m or 2h (or 0), at least 1ms"),
        ("RPC_TIMEOUT", "5", "a duration such as 250ms, 10s, 1.5m or 2h (or 0)"),
        ("RPC_RETRIES", "0", "a whole number from 1 to 100"),
        ("LIMIT_BACKOFF", "soon", "a duration"),
        ("LIMIT_BACKOFF", "2m", "at most 60s"),
        ("LIMIT_BACKOFF_MAX", "-1s", "a duration"),
        ("LIMIT_BACKOFF_MAX", "1h", "at most 600s"),
        ("DNS_MIN_TIME_BETWEEN_RESOLUTIONS", "1 minute", "a duration"),
        ("SUMMARY_INTERVAL", "-5s", "a duration"),
        ("SUMMARY_INTERVAL", "0", "at least 100ms"),
        ("ROUND_INTERVAL", "fast", "a duration"),
        ("MAX_ROUNDS", "-1", "a whole number of at least 0"),
        ("MAX_DURATION", "1d", "a duration"),
        ("STARTUP_TIMEOUT", "never", "a duration"),
        ("LOG_RESPONSES", "sometimes", "true or false"),
        ("HEALTH_CHECK", "maybe", "true or false"),
        ("LOG_LEVEL", "loud", "one of debug, info, warning, error"),
    ],
)
def test_bad_values_name_the_variable_and_what_is_accepted(variable, value, expected):
    with pytest.raises(ConfigError) as caught:
        ClientConfig.from_env({variable: value})
    assert (caught.value.variable, caught.value.value) == (variable, value)
    assert expected in caught.value.expected


NEW_SETTINGS = {
    "CLIENT_MODE": ("load", "one of rounds, closed_loop, streams"),
    "TICK_INTERVAL": ("1ms", "a duration such as 250ms, 10s, 1.5m or 2h (or 0), at least 10ms"),
    "LB_POLICY": ("least_request", "one of round_robin, pick_first, weighted_round_robin"),
    "WRR_BLACKOUT_PERIOD": ("10", "a duration"),
    "WRR_WEIGHT_UPDATE_PERIOD": ("10ms", "a duration"),
    "WRR_ERROR_UTILIZATION_PENALTY": ("1e3", "a number from 0 to 1000"),
    "OUTLIER_DETECTION": ("enabled", "true or false"),
    "OUTLIER_INTERVAL": ("10", "a duration"),
    "OUTLIER_EJECTION_TIME": ("-1s", "a duration"),
    "OUTLIER_FAILURE_PERCENTAGE": ("85%", "a whole number from 1 to 100"),
    "OUTLIER_MIN_CALLS": ("many", "a whole number from 1 to 1000000"),
    "LIMIT_BACKOFF": ("100", "a duration"),
    "LIMIT_BACKOFF_MAX": ("0", "a duration such as 250ms, 10s, 1.5m or 2h (or 0), at least 1ms"),
}


@pytest.mark.slow
def test_each_bad_new_setting_stops_the_process_with_exit_2_and_one_json_line(spawn):
    clients = {
        name: spawn("hello_client", **{name: bad}) for name, (bad, _) in NEW_SETTINGS.items()
    }
    for name, client in clients.items():
        assert client.wait(timeout=15) == 2, name
        (line,) = client.events
        assert (line["event"], line["variable"], line["value"]) == (
            "config.invalid",
            name,
            NEW_SETTINGS[name][0],
        )
        assert line["expected"].startswith(NEW_SETTINGS[name][1])
        assert "Traceback" not in client.stderr
