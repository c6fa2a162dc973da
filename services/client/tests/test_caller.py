"""The one caller the three loops share: its pause, its limits, and its calls against a real
server, counted by status code and logged, never raised."""

import asyncio
from dataclasses import replace

import pytest
import structlog
from hello_client import events
from hello_client.caller import FAILED_ROUND_PAUSE, Backoff, Caller
from hello_client.channel import create_channel
from hello_client.config import ClientConfig
from hello_client.rounds import RoundLoop
from hello_client.stats import Stats
from hellolb.v1 import hello_pb2_grpc

#: Bounds on waits only (never a measured figure): a server process takes up to 15 s to start
#: on a 2-core machine with a load of 40, and a call as long.
STARTUP = 60


def test_the_pause_doubles_up_to_its_last_value_and_starts_again_after_a_success():
    backoff = Backoff()
    pauses = [backoff.next() for _ in range(7)]
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert (pauses[0], pauses[-1]) == FAILED_ROUND_PAUSE
    backoff.reset()
    assert backoff.next() == 0.1


class Clock:
    def __init__(self):
        self.now = 50.0

    def __call__(self):
        return self.now


def caller_for(config, stub=None, clock=None, log=None):
    return Caller(config, stub, Stats(), log or structlog.get_logger(), clock=clock or Clock())


def test_the_limits_are_max_rounds_then_max_duration():
    clock = Clock()
    env = {"MAX_ROUNDS": "3", "MAX_DURATION": "2s"}
    caller = caller_for(ClientConfig.from_env(env), clock=clock)
    assert caller.limit(2, started=50.0) is None
    assert caller.limit(3, started=50.0) == "max_rounds"
    clock.now += 2
    assert caller.limit(0, started=50.0) == "max_duration"
    assert caller_for(ClientConfig.from_env({}), clock=clock).limit(10**6, 0.0) is None


async def call_once(config, counter):
    async with create_channel(config) as channel:
        caller = Caller(
            config, hello_pb2_grpc.HelloServiceStub(channel), Stats(), structlog.get_logger()
        )
        return await caller.call(counter), caller


@pytest.mark.slow
def test_an_error_answer_is_counted_by_code_and_logged_not_raised(spawn, port, log_lines):
    server = spawn(
        "hello_server",
        BIND_ADDRESS="127.0.0.1",
        PORT=str(port),
        SERVER_ID="s1",
        FAULT_ERROR_RATE="1",
        FAULT_ERROR_CODE="INTERNAL",
    )
    server.wait_event("server.started", timeout=STARTUP)
    config = ClientConfig.from_env({"SERVER_ADDRESS": f"127.0.0.1:{port}", "RPC_TIMEOUT": "60s"})
    answered, caller = asyncio.run(call_once(config, 7))
    assert answered is False
    assert caller.stats.errors_total == {"INTERNAL": 1}
    assert caller.stats.errors_by_server_total == {"s1": 1}
    (error,) = [e for e in log_lines.take() if e["event"] == events.ERROR]
    assert (error["counter"], error["code"], error["server_id"]) == (7, "INTERNAL", "s1")


@pytest.mark.slow
def test_no_server_is_unavailable_after_the_retries_within_the_deadline(port, log_lines):
    config = ClientConfig.from_env(
        {"SERVER_ADDRESS": f"127.0.0.1:{port}", "RPC_RETRIES": "2", "RPC_TIMEOUT": "60s"}
    )
    answered, caller = asyncio.run(call_once(config, 1))
    assert answered is False
    assert caller.stats.errors_total == {"UNAVAILABLE": 1}
    (error,) = [e for e in log_lines.take() if e["event"] == events.ERROR]
    # Out of retries, not out of time: the deadline would have been DEADLINE_EXCEEDED.
    assert error["server_id"] is None


@pytest.mark.slow
def test_the_rounds_loop_numbers_its_calls_and_logs_each_answer(spawn, port, log_lines):
    server = spawn("hello_server", BIND_ADDRESS="127.0.0.1", PORT=str(port), WORK_TIME="0")
    server.wait_event("server.started", timeout=STARTUP)
    env = {
        "SERVER_ADDRESS": f"127.0.0.1:{port}",
        "CONCURRENCY": "4",
        "MAX_ROUNDS": "3",
        "RPC_TIMEOUT": "60s",
    }
    config = ClientConfig.from_env(env)

    async def run(config):
        async with create_channel(config) as channel:
            caller = Caller(
                config, hello_pb2_grpc.HelloServiceStub(channel), Stats(), structlog.get_logger()
            )
            return await RoundLoop(caller).run(asyncio.Event())

    assert asyncio.run(run(config)) == "max_rounds"
    logged = log_lines.take()
    answers = [e["counter"] for e in logged if e["event"] == events.RESPONSE]
    assert sorted(answers) == list(range(1, 13))
    (summary,) = [e for e in logged if e["event"] == events.SUMMARY]
    assert (summary["rounds_total"], summary["answers_total"], summary["final"]) == (3, 12, True)
    # Without the log line per answer, the same calls, counted the same way.
    assert asyncio.run(run(replace(config, log_responses=False))) == "max_rounds"
    logged = log_lines.take()
    assert not [e for e in logged if e["event"] == events.RESPONSE]
    assert [e["answers_total"] for e in logged if e["event"] == events.SUMMARY] == [12]
