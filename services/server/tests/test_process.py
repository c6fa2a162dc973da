"""The server as a real process: health, reflection, signals, bad settings."""

import asyncio
import signal
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hellolb.v1 import hello_pb2, hello_pb2_grpc

pytestmark = pytest.mark.slow


def start_server(spawn, port, **env):
    env = {"BIND_ADDRESS": "127.0.0.1", "PORT": str(port), "SERVER_ID": "s1", **env}
    server = spawn("hello_server", **env)
    server.wait_event("server.started", timeout=15)
    return server


def test_health_and_reflection_on_the_service_port(spawn, port):
    start_server(spawn, port, WORK_TIME="0")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "hellolb.v1.HelloService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
        names = {s.name for s in reply.list_services_response.service}
        assert {"hellolb.v1.HelloService", "grpc.health.v1.Health"} <= names


def test_sigterm_lets_in_flight_calls_finish_then_exits_zero(spawn, port):
    server = start_server(spawn, port, WORK_TIME="1s", SHUTDOWN_GRACE="5s", LOG_LEVEL="debug")

    async def scenario():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = hello_pb2_grpc.HelloServiceStub(channel)
            calls = [
                stub.Hello(hello_pb2.HelloRequest(client_id="c", counter=n), timeout=10)
                for n in range(1, 6)
            ]
            pending = asyncio.gather(*calls)
            await asyncio.to_thread(
                server.wait_for,
                lambda e: len(server.named("rpc.received")) == 5,
                10,
            )
            sent = time.monotonic()
            server.signal(signal.SIGTERM)
            answers = await pending
            return answers, sent

    answers, sent = asyncio.run(scenario())
    assert sorted(a.request.counter for a in answers) == [1, 2, 3, 4, 5]
    assert server.wait(timeout=10) == 0
    assert time.monotonic() - sent < 5
    stopping = server.wait_event("server.stopping", timeout=1)
    assert (stopping["signal"], stopping["grace_seconds"]) == ("SIGTERM", 5.0)
    server.wait_event("server.stopped", timeout=1)


def test_grace_bounds_the_wait_for_slow_calls(spawn, port):
    server = start_server(spawn, port, WORK_TIME="30s", SHUTDOWN_GRACE="1s", LOG_LEVEL="debug")

    async def scenario():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = hello_pb2_grpc.HelloServiceStub(channel)
            call = stub.Hello(hello_pb2.HelloRequest(client_id="c", counter=1), timeout=60)
            await asyncio.to_thread(server.wait_event, "rpc.received", 10)
            server.signal(signal.SIGTERM)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            return caught.value.code()

    started = time.monotonic()
    code = asyncio.run(scenario())
    assert code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert server.wait(timeout=10) == 0
    assert time.monotonic() - started < 10


def health_status(channel):
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="hellolb.v1.HelloService"), timeout=5
    )
    return reply.status


def test_sigterm_reports_not_serving_and_keeps_serving_through_the_drain(spawn, port):
    server = start_server(spawn, port, WORK_TIME="0", DRAIN_DELAY="3s")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING
        sent = time.monotonic()
        server.signal(signal.SIGTERM)
        server.wait_event("server.stopping", timeout=10, signal="SIGTERM", drain_seconds=3.0)
        deadline = time.monotonic() + 2
        while health_status(channel) != health_pb2.HealthCheckResponse.NOT_SERVING:
            assert time.monotonic() < deadline, "still SERVING after SIGTERM"
        stub = hello_pb2_grpc.HelloServiceStub(channel)
        reply = stub.Hello(hello_pb2.HelloRequest(client_id="c", counter=1), timeout=5)
        assert reply.server_id == "s1"
    assert server.wait(timeout=15) == 0
    assert time.monotonic() - sent >= 3
    drained = server.wait_event("server.drained", timeout=1)
    assert drained["seconds"] >= 3
    assert drained["cut_short_by"] is None
    server.wait_event("server.stopped", timeout=1, reason="terminate")


def test_sigint_stops_at_once_without_the_drain(spawn, port):
    server = start_server(spawn, port, WORK_TIME="0", DRAIN_DELAY="60s")
    server.signal(signal.SIGINT)
    assert server.wait(timeout=15) == 0
    server.wait_event("server.stopping", timeout=1, signal="SIGINT", drain_seconds=0.0)
    assert server.named("server.drained") == []


def test_ctrl_c_during_the_drain_stops_at_once(spawn, port):
    server = start_server(spawn, port, WORK_TIME="0", DRAIN_DELAY="60s")
    server.signal(signal.SIGTERM)
    server.wait_event("server.stopping", timeout=10)
    server.signal(signal.SIGINT)
    assert server.wait(timeout=15) == 0
    drained = server.wait_event("server.drained", timeout=1, cut_short_by="SIGINT")
    assert drained["seconds"] < 60


def test_sighup_reloads_in_place_and_serves_again(spawn, port):
    server = start_server(spawn, port, WORK_TIME="0")
    server.signal(signal.SIGHUP)
    server.wait_event("server.reloading", timeout=10)
    index = len(server.events)
    server.wait_event("server.started", timeout=15, start=index)
    assert server.popen.poll() is None  # the same process, re-executed
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = hello_pb2_grpc.HelloServiceStub(channel)
        reply = stub.Hello(hello_pb2.HelloRequest(client_id="c", counter=1), timeout=5)
    assert reply.server_id == "s1"
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=10) == 0


def test_a_busy_port_is_refused_with_a_clear_line(spawn, port):
    start_server(spawn, port, WORK_TIME="0")
    second = spawn(
        "hello_server", BIND_ADDRESS="127.0.0.1", PORT=str(port), SERVER_ID="s2", WORK_TIME="0"
    )
    assert second.wait(timeout=15) == 1
    (line,) = second.named("server.bind_failed")
    assert f"127.0.0.1:{port}" in line["error"]


def test_bad_configuration_exits_2_with_one_json_line(spawn):
    server = spawn("hello_server", MAX_CONNECTION_AGE="ten seconds")
    assert server.wait(timeout=15) == 2
    assert server.events == [
        {
            "event": "config.invalid",
            "variable": "MAX_CONNECTION_AGE",
            "value": "ten seconds",
            "expected": "a duration such as 250ms, 10s, 1.5m or 2h (or 0), at least 1ms",
            "level": "error",
            "timestamp": server.events[0]["timestamp"],
        }
    ]
    assert server.non_json == []
    assert "Traceback" not in server.stderr


def test_a_bad_drain_delay_exits_2_with_one_json_line(spawn):
    server = spawn("hello_server", DRAIN_DELAY="3")
    assert server.wait(timeout=15) == 2
    (line,) = server.events
    assert (line["event"], line["variable"], line["value"]) == (
        "config.invalid",
        "DRAIN_DELAY",
        "3",
    )
    assert line["expected"] == "a duration such as 250ms, 10s, 1.5m or 2h (or 0)"
    assert "Traceback" not in server.stderr


NEW_SETTINGS = {
    "FAULT_LATENCY": ("soon", "a duration such as 250ms, 10s, 1.5m or 2h (or 0)"),
    "FAULT_ERROR_RATE": ("0.5%", "a number from 0 to 1, such as 0.25"),
    "FAULT_ERROR_CODE": ("OK", "a gRPC status code other than OK: CANCELLED, UNKNOWN"),
    "ORCA_REPORTS": ("sometimes", "true or false"),
}


def test_each_bad_fault_or_report_setting_exits_2_with_one_json_line(spawn):
    servers = {
        name: spawn("hello_server", **{name: bad}) for name, (bad, _) in NEW_SETTINGS.items()
    }
    for name, server in servers.items():
        assert server.wait(timeout=15) == 2, name
        (line,) = server.events
        assert (line["event"], line["variable"], line["value"]) == (
            "config.invalid",
            name,
            NEW_SETTINGS[name][0],
        )
        assert line["expected"].startswith(NEW_SETTINGS[name][1])
        assert "Traceback" not in server.stderr


def test_the_fault_settings_are_in_the_config_line(spawn, port):
    server = start_server(
        spawn, port, WORK_TIME="0", FAULT_LATENCY="50ms", FAULT_ERROR_RATE="0.1", ORCA_REPORTS="0"
    )
    (config,) = server.named("server.config")
    assert config["faults"] == {"latency": 0.05, "error_rate": 0.1, "error_code": "UNAVAILABLE"}
    assert config["orca_reports"] is False


def test_sigterm_ends_open_streams_with_ok_once_the_drain_is_over(spawn, port):
    server = start_server(spawn, port, WORK_TIME="0", DRAIN_DELAY="1s", SHUTDOWN_GRACE="30s")

    async def scenario():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = hello_pb2_grpc.HelloServiceStub(channel)
            calls = [
                stub.Ticks(hello_pb2.TicksRequest(client_id="c", stream=n, interval_ms=50))
                for n in (1, 2)
            ]
            for call in calls:
                await call.read()
            server.signal(signal.SIGTERM)
            sent = time.monotonic()
            for call in calls:
                while await call.read() is not grpc.aio.EOF:
                    pass
            ended = time.monotonic() - sent
            return [(await c.code(), dict(await c.trailing_metadata())) for c in calls], ended

    ends, ended = asyncio.run(scenario())
    assert ends == [(grpc.StatusCode.OK, {"hellolb-stream-end": "drain"})] * 2
    # The streams were served through the drain, and ended long before the grace.
    assert 1.0 <= ended < 15
    assert server.wait(timeout=15) == 0
    closed = server.wait_event("server.streams_closed", timeout=1)
    assert (closed["streams"], closed["still_open"]) == (2, 0)
    drained = server.wait_event("server.drained", timeout=1)
    assert server.events.index(drained) < server.events.index(closed)
