import socket

import pytest
from hello_server.config import ServerConfig
from hello_server.faults import Faults
from hellolb.config import ConfigError


def test_defaults():
    config = ServerConfig.from_env({})
    assert (config.bind_address, config.port) == ("0.0.0.0", 50051)
    assert config.work_time == 0.2
    assert config.max_connection_age is None
    assert config.max_connection_age_grace is None
    assert config.drain_delay == 1.0
    assert config.shutdown_grace == 10.0
    assert config.server_id  # the hostname
    assert config.faults == Faults(latency=0.0, error_rate=0.0, error_code="UNAVAILABLE")
    assert config.orca_reports is False


def test_fault_settings():
    config = ServerConfig.from_env(
        {
            "FAULT_LATENCY": "150ms",
            "FAULT_ERROR_RATE": "0.25",
            "FAULT_ERROR_CODE": "resource_exhausted",
            "ORCA_REPORTS": "true",
        }
    )
    assert config.faults == Faults(latency=0.15, error_rate=0.25, error_code="RESOURCE_EXHAUSTED")
    assert config.orca_reports is True
    # The log line shows them as they are.
    fields = config.as_log_fields()
    assert fields["faults"] == {
        "latency": 0.15,
        "error_rate": 0.25,
        "error_code": "RESOURCE_EXHAUSTED",
    }
    assert fields["orca_reports"] is True


def test_server_id_comes_from_pod_name_unless_set():
    assert ServerConfig.from_env({"POD_NAME": "server-abc"}).server_id == "server-abc"
    both = {"POD_NAME": "server-abc", "SERVER_ID": "s1"}
    assert ServerConfig.from_env(both).server_id == "s1"


def test_max_connection_age_and_grace_are_durations():
    config = ServerConfig.from_env({"MAX_CONNECTION_AGE": "10s", "MAX_CONNECTION_AGE_GRACE": "20s"})
    assert (config.max_connection_age, config.max_connection_age_grace) == (10.0, 20.0)


def test_drain_delay_is_a_duration_and_zero_means_no_drain():
    assert ServerConfig.from_env({"DRAIN_DELAY": "3s"}).drain_delay == 3.0
    assert ServerConfig.from_env({"DRAIN_DELAY": "0"}).drain_delay == 0.0


def test_work_time_may_be_zero():
    assert ServerConfig.from_env({"WORK_TIME": "0"}).work_time == 0.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "http"),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("BIND_ADDRESS", "localhost"),
        ("BIND_ADDRESS", "127.0.0.300"),
        ("WORK_TIME", "-1s"),
        ("WORK_TIME", "1"),
        ("MAX_CONNECTION_AGE", "0"),
        ("MAX_CONNECTION_AGE", "10 s"),
        ("MAX_CONNECTION_AGE_GRACE", "soon"),
        ("SHUTDOWN_GRACE", "-5s"),
        ("DRAIN_DELAY", "3"),
        ("DRAIN_DELAY", "-1s"),
        ("DRAIN_DELAY", "soon"),
        ("LOG_LEVEL", "verbose"),
        ("LOG_FORMAT", "xml"),
        ("SERVER_ID", "x" * 300),
        ("FAULT_LATENCY", "slow"),
        ("FAULT_LATENCY", "100"),
        ("FAULT_LATENCY", "-1s"),
        ("FAULT_ERROR_RATE", "1.5"),
        ("FAULT_ERROR_RATE", "-0.1"),
        ("FAULT_ERROR_RATE", "50%"),
        ("FAULT_ERROR_RATE", "half"),
        ("FAULT_ERROR_CODE", "OK"),
        ("FAULT_ERROR_CODE", "teapot"),
        ("FAULT_ERROR_CODE", "14"),
        ("ORCA_REPORTS", "maybe"),
    ],
)
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_env({variable: value})
    assert caught.value.variable == variable
    assert caught.value.value == value
    assert caught.value.expected


def test_public_address_prefers_the_pod_ip_when_bound_to_all_interfaces():
    config = ServerConfig.from_env({"POD_IP": "10.244.1.7", "PORT": "7000"})
    assert config.public_address == "10.244.1.7:7000"
    local = ServerConfig.from_env({"BIND_ADDRESS": "127.0.0.2", "POD_IP": "10.244.1.7"})
    assert local.public_address == "127.0.0.2:50051"
    assert ServerConfig.from_env({}).public_address == f"{socket.gethostname()}:50051"


def test_ipv6_addresses_are_bracketed():
    assert ServerConfig.from_env({"BIND_ADDRESS": "::1"}).listen_target == "[::1]:50051"
