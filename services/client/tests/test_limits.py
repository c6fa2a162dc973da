"""A limit is not a failure: calls answered RESOURCE_EXHAUSTED are counted and logged as
*limited*, are not retried at once, and honour the server's ``grpc-retry-pushback-ms`` (gRFC A6),
against a real grpc.aio server on loopback that answers each call as a script says."""

import asyncio
import itertools
import random
import time

import grpc
import pytest
import structlog
from hello_client import events
from hello_client.caller import Caller, Pacing
from hello_client.channel import create_channel
from hello_client.closedloop import ClosedLoop
from hello_client.config import ClientConfig
from hello_client.retry import PUSHBACK_KEY
from hello_client.rounds import RoundLoop
from hello_client.stats import Stats
from hello_client.streams import StreamLoop
from hellolb import trailers
from hellolb.v1 import hello_pb2, hello_pb2_grpc

#: Bound on waits only (never a measured figure), generous for a busy 2-core machine.
BOUND = 60
PUSHBACK_MS = 400


class Scripted(hello_pb2_grpc.HelloServiceServicer):
    """Answers the n-th call as ``script[n]`` says (``None``: OK), then OK for good; notes when
    each call arrived (monotonic seconds)."""

    def __init__(self, script):
        self.script = list(script)
        self.arrivals: list[float] = []
        self.opened_twice = asyncio.Event()

    async def Hello(self, request, context):  # noqa: N802 - the generated name
        self.arrivals.append(time.monotonic())
        step = self.script.pop(0) if self.script else None
        if step is not None:
            code, pushback = step
            if pushback is not None:
                context.set_trailing_metadata(
                    ((PUSHBACK_KEY, pushback), (trailers.SERVER_ID_KEY, "s1"))
                )
            else:
                context.set_trailing_metadata(((trailers.SERVER_ID_KEY, "s1"),))
            await context.abort(code, f"scripted {code.name}")
        return hello_pb2.HelloResponse(server_id="s1", message="hello")

    async def Ticks(self, request, context):  # noqa: N802 - the generated name
        self.arrivals.append(time.monotonic())
        if len(self.arrivals) >= 2:
            self.opened_twice.set()
        step = self.script.pop(0) if self.script else None
        if step is not None:
            code, pushback = step
            context.set_trailing_metadata(
                ((PUSHBACK_KEY, pushback), (trailers.SERVER_ID_KEY, "s1"))
            )
            await context.abort(code, f"scripted {code.name}")
        tick = 0
        while True:
            tick += 1
            yield hello_pb2.TicksResponse(server_id="s1", stream=request.stream, tick=tick)
            await asyncio.sleep(0.05)


def gaps(arrivals):
    return [b - a for a, b in itertools.pairwise(arrivals)]


async def against(script, env, run, servicer=None):
    """Start a scripted server on a loopback port, build a caller for it, ``await run(caller)``;
    return what it returned, the caller and the server's arrivals."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = servicer or Scripted(script)
    hello_pb2_grpc.add_HelloServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        config = ClientConfig.from_env(
            {
                "SERVER_ADDRESS": f"127.0.0.1:{port}",
                "HEALTH_CHECK": "false",
                "RPC_TIMEOUT": f"{BOUND}s",
                "CONCURRENCY": "1",
                **env,
            }
        )
        async with create_channel(config) as channel:
            stub = hello_pb2_grpc.HelloServiceStub(channel)
            caller = Caller(config, stub, Stats(), structlog.get_logger())
            result = await asyncio.wait_for(run(caller), BOUND)
    finally:
        await server.stop(None)
    return result, caller, servicer.arrivals


def closed_loop(calls):
    async def run(caller):
        return await ClosedLoop(caller).run(asyncio.Event())

    return run, {"CLIENT_MODE": "closed_loop", "MAX_ROUNDS": str(calls)}


LIMIT = grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_limited_call_is_counted_and_logged_apart_from_failures(log_lines):
    # No pushback: not retried; one call limited, one failed, one answered.
    script = [(LIMIT, None), (grpc.StatusCode.INTERNAL, None)]
    run, env = closed_loop(3)
    _, caller, arrivals = asyncio.run(against(script, {**env, "LIMIT_BACKOFF": "10ms"}, run))
    assert len(arrivals) == 3
    stats = caller.stats
    assert (stats.limited_total, dict(stats.limited_by_server_total)) == (1, {"s1": 1})
    assert dict(stats.errors_total) == {"INTERNAL": 1}
    logged = log_lines.events()
    (limited,) = [e for e in logged if e["event"] == events.LIMITED]
    assert (limited["code"], limited["server_id"], limited["pushback_ms"]) == (
        "RESOURCE_EXHAUSTED",
        "s1",
        None,
    )
    assert [e["code"] for e in logged if e["event"] == events.ERROR] == ["INTERNAL"]
    (summary,) = [e for e in logged if e["event"] == events.SUMMARY]
    assert summary[events.LIMITED_TOTAL] == 1
    assert summary[events.ERRORS_TOTAL_COUNT] == 1
    assert "RESOURCE_EXHAUSTED" not in summary["errors_total"]


def test_a_pushback_is_waited_for_then_the_call_is_retried():
    script = [(LIMIT, str(PUSHBACK_MS))]
    _, caller, arrivals = asyncio.run(
        against(script, {"RPC_RETRIES": "3"}, lambda caller: caller.call(1, caller.pacing()))
    )
    assert len(arrivals) == 2
    # The server's clock on both ends: the retry came no sooner than the pushback.
    assert gaps(arrivals)[0] >= PUSHBACK_MS / 1000
    # The retry was answered: the call is neither limited nor failed.
    assert (caller.stats.limited_total, dict(caller.stats.errors_total)) == (0, {})
    assert sum(caller.stats.by_server_total.values()) == 1


def test_out_of_retries_the_slot_waits_the_pushback_before_its_next_call():
    script = [(LIMIT, str(PUSHBACK_MS))]
    run, env = closed_loop(2)
    _, caller, arrivals = asyncio.run(against(script, {**env, "RPC_RETRIES": "1"}, run))
    assert len(arrivals) == 2
    assert gaps(arrivals)[0] >= PUSHBACK_MS / 1000
    assert caller.stats.limited_total == 1


def test_a_pushback_above_the_cap_is_not_waited_for_within_the_call():
    script = [(LIMIT, "600000")]
    answered, caller, arrivals = asyncio.run(
        against(script, {"LIMIT_BACKOFF_MAX": "200ms"}, lambda caller: caller.call(1))
    )
    assert (answered, len(arrivals), caller.stats.limited_total) == (False, 1, 1)


@pytest.mark.parametrize("pushback", ["-1", "abc", "1.5", "", "99999999999999999999"])
def test_a_negative_or_malformed_pushback_means_no_retry_and_a_backoff(pushback, log_lines):
    script = [(LIMIT, pushback), (LIMIT, pushback)]
    run, env = closed_loop(3)
    env = {**env, "RPC_RETRIES": "3", "LIMIT_BACKOFF": "200ms"}
    reason, caller, arrivals = asyncio.run(against(script, env, run))
    # Each limited call tried once; the loop went on to its bound.
    assert (reason, len(arrivals), caller.stats.limited_total) == ("max_rounds", 3, 2)
    first, second = gaps(arrivals)
    # The backoff's first pause, less its jitter, then twice that.
    assert first >= 0.2 * (1 - Pacing.JITTER)
    assert second >= 0.4 * (1 - Pacing.JITTER)
    assert [e["pushback_ms"] for e in log_lines.events() if e["event"] == events.LIMITED] == [
        None,
        None,
    ]


def test_unavailable_is_still_retried_at_once_whatever_a_pushback_says():
    # Pushback is honoured for limits only; UNAVAILABLE keeps its short backoff.
    script = [(grpc.StatusCode.UNAVAILABLE, "30000")]
    answered, caller, arrivals = asyncio.run(
        against(script, {"RPC_RETRIES": "3"}, lambda caller: caller.call(1))
    )
    assert (answered, len(arrivals)) == (True, 2)
    assert gaps(arrivals)[0] < 15.0
    assert (caller.stats.limited_total, dict(caller.stats.errors_total)) == (0, {})


def test_a_round_with_limited_calls_waits_before_the_next_round():
    script = [(LIMIT, None)] * 2
    env = {"CONCURRENCY": "2", "MAX_ROUNDS": "2", "LIMIT_BACKOFF": "300ms"}

    async def run(caller):
        return await RoundLoop(caller).run(asyncio.Event())

    _, caller, arrivals = asyncio.run(against(script, env, run))
    assert len(arrivals) == 4
    # One pause for the round, not one per limited call.
    assert arrivals[2] - arrivals[1] >= 0.3 * (1 - Pacing.JITTER)
    assert caller.stats.limited_total == 2


def test_the_pacing_backs_off_from_the_first_pause_to_the_cap_and_starts_again():
    pacing = Pacing(0.1, 0.5, random.Random(1))
    pauses = []
    for _ in range(5):
        pacing.limited(None)
        pauses.append(pacing.take())
    for pause, base in zip(pauses, [0.1, 0.2, 0.4, 0.5, 0.5], strict=True):
        assert base * (1 - Pacing.JITTER) <= pause <= min(base * (1 + Pacing.JITTER), 0.5)
    assert pacing.take() == 0.0  # a batch with no limit
    pacing.limited(None)
    assert pacing.take() <= 0.1 * (1 + Pacing.JITTER)
    pacing.limited(2.0)
    pacing.limited(0.3)
    assert pacing.take() == 0.5  # the largest pushback, capped


def test_a_limited_stream_open_is_counted_apart_and_waits_the_pushback(log_lines):
    servicer = Scripted([(LIMIT, str(PUSHBACK_MS))])
    env = {"CLIENT_MODE": "streams", "TICK_INTERVAL": "50ms"}

    async def run(caller):
        stopping = asyncio.Event()
        loop = asyncio.create_task(StreamLoop(caller).run(stopping))
        await servicer.opened_twice.wait()
        stopping.set()
        return await loop

    reason, caller, arrivals = asyncio.run(against([], env, run, servicer))
    assert reason == "signal"
    assert gaps(arrivals)[0] >= PUSHBACK_MS / 1000
    assert (caller.stats.limited_total, dict(caller.stats.errors_total)) == (1, {})
    ends = [e for e in log_lines.events() if e["event"] == events.STREAM_ENDED]
    assert (ends[0]["code"], ends[0]["limited"], ends[0]["error"]) == (LIMIT.name, True, False)
    assert ends[0]["pushback_ms"] == PUSHBACK_MS
