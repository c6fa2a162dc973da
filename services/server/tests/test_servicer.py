"""The servicer behind a real in-process grpc.aio server on loopback."""

import asyncio
import contextlib
import io
import json
import logging

import grpc
import pytest
import structlog
from hello_server.faults import Faults
from hello_server.orca import LoadMeter
from hello_server.servicer import MAX_CLIENT_ID_LENGTH, HelloServicer, ServerIdentity
from hello_server.streams import OpenStreams
from hellolb import ticks, trailers
from hellolb.logsetup import configure_logging
from hellolb.v1 import hello_pb2, hello_pb2_grpc

IDENTITY = ServerIdentity("server-1", "127.0.0.1:1", pod_ip="10.0.0.1", node_name="node-a")


@pytest.fixture
def logs():
    out = io.StringIO()
    configure_logging("info", "json", out)
    yield out
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def rpc_lines(logs):
    """The servicer's own lines. grpc.aio's poller may log an error of its own when a test's
    event loop has closed under it (asyncio's "Event loop is closed"): not ours to count."""
    lines = [json.loads(x) for x in logs.getvalue().splitlines()]
    return [line for line in lines if line["event"].startswith("rpc.")]


def call(servicer, request):
    async def run():
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        hello_pb2_grpc.add_HelloServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await hello_pb2_grpc.HelloServiceStub(channel).Hello(request, timeout=5)
        finally:
            await server.stop(None)

    return asyncio.run(run())


def test_answer_echoes_the_request_prefixed_by_the_server_id(logs):
    request = hello_pb2.HelloRequest(client_id="client-7", counter=42)
    response = call(HelloServicer(IDENTITY, 0), request)
    assert response.message == "server-1: Hello client-7 #42"
    assert response.request == request
    assert (response.server_id, response.server_pod_ip, response.server_node) == (
        "server-1",
        "10.0.0.1",
        "node-a",
    )
    assert response.caller_address.startswith("ipv4:127.0.0.1:")


def test_each_handled_call_is_one_log_line(logs):
    call(HelloServicer(IDENTITY, 0), hello_pb2.HelloRequest(client_id="c", counter=1))
    (line,) = rpc_lines(logs)
    assert line["event"] == "rpc.handled"
    assert (line["client_id"], line["counter"]) == ("c", 1)
    assert line["peer"].startswith("ipv4:127.0.0.1:")


def test_work_time_is_spent_before_answering(logs):
    waited = []

    async def work(seconds):
        waited.append(seconds)

    call(HelloServicer(IDENTITY, 0.3, work=work), hello_pb2.HelloRequest(client_id="c"))
    assert waited == [0.3]


def test_zero_work_time_does_not_wait(logs):
    async def work(seconds):
        raise AssertionError("no work expected")

    response = call(HelloServicer(IDENTITY, 0, work=work), hello_pb2.HelloRequest(client_id="c"))
    assert response.server_id == "server-1"


@pytest.mark.parametrize(
    ("client_id", "reason"),
    [
        ("x" * (MAX_CLIENT_ID_LENGTH + 1), "longer than 128"),
        ("", "required"),
        ("tab\there", "printable"),
    ],
)
def test_bad_client_id_is_invalid_argument(logs, client_id, reason):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        call(HelloServicer(IDENTITY, 0), hello_pb2.HelloRequest(client_id=client_id))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in caught.value.details()
    events = [line["event"] for line in rpc_lines(logs)]
    assert events == ["rpc.invalid"]


def test_longest_accepted_client_id(logs):
    client_id = "x" * MAX_CLIENT_ID_LENGTH
    response = call(HelloServicer(IDENTITY, 0), hello_pb2.HelloRequest(client_id=client_id))
    assert response.request.client_id == client_id


def test_unexpected_error_is_internal_with_a_generic_message_and_logged_once(logs):
    async def broken(seconds):
        raise ZeroDivisionError("secret detail")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        call(HelloServicer(IDENTITY, 1, work=broken), hello_pb2.HelloRequest(client_id="c"))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error"
    lines = rpc_lines(logs)
    failed = [line for line in lines if line["event"] == "rpc.failed"]
    assert len(failed) == 1
    assert failed[0]["exception"][0]["exc_type"] == "ZeroDivisionError"


def serve(servicer, scenario):
    """Run ``scenario(stub)`` against ``servicer`` on a real in-process server."""

    async def run():
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        hello_pb2_grpc.add_HelloServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await scenario(hello_pb2_grpc.HelloServiceStub(channel))
        finally:
            await server.stop(None)

    return asyncio.run(run())


def event_names(logs):
    return [line["event"] for line in rpc_lines(logs)]


def test_ticks_name_the_server_and_count_up(logs):
    async def scenario(stub):
        call = stub.Ticks(hello_pb2.TicksRequest(client_id="c", stream=7, interval_ms=10))
        replies = []
        async for reply in call:
            replies.append(reply)
            if len(replies) == 3:
                break
        call.cancel()
        return replies

    replies = serve(HelloServicer(IDENTITY, 0), scenario)
    assert [r.tick for r in replies] == [1, 2, 3]
    assert {(r.server_id, r.stream, r.server_node) for r in replies} == {("server-1", 7, "node-a")}
    assert replies[0].caller_address.startswith("ipv4:127.0.0.1:")


@pytest.mark.parametrize("interval_ms", [1, 9, ticks.MAX_INTERVAL_MS + 1])
def test_an_interval_out_of_bounds_is_invalid_argument(logs, interval_ms):
    async def scenario(stub):
        call = stub.Ticks(hello_pb2.TicksRequest(client_id="c", interval_ms=interval_ms))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
        return caught.value

    error = serve(HelloServicer(IDENTITY, 0), scenario)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "interval_ms" in error.details()
    assert event_names(logs) == ["rpc.invalid"]


def test_closing_the_streams_ends_each_with_ok_and_the_drain_reason(logs):
    streams = OpenStreams()
    servicer = HelloServicer(IDENTITY, 0, streams=streams)

    async def scenario(stub):
        call = stub.Ticks(hello_pb2.TicksRequest(client_id="c", interval_ms=10))
        await call.read()
        assert streams.count == 1
        was_open, still_open = await streams.close(5)
        rest = []
        while (reply := await call.read()) is not grpc.aio.EOF:
            rest.append(reply)
        late = stub.Ticks(hello_pb2.TicksRequest(client_id="c", interval_ms=10))
        late_replies = [reply async for reply in late]
        return (was_open, still_open), call, late, late_replies

    counts, call, late, late_replies = asyncio.run(_serve_async(servicer, scenario))
    assert counts == (1, 0)
    assert call.code_now == grpc.StatusCode.OK
    assert call.trailer_now[ticks.END_REASON_KEY] == ticks.END_DRAIN
    # A stream that opens once the streams are closed ends at once, the same way.
    assert late_replies == []
    assert late.code_now == grpc.StatusCode.OK
    ended = rpc_lines(logs)
    assert [e["end"] for e in ended if e["event"] == "rpc.stream_ended"] == ["drain", "drain"]


async def _serve_async(servicer, scenario):
    """As ``serve``, from a running loop; each call's status is read before the server stops."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    hello_pb2_grpc.add_HelloServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            result = await scenario(hello_pb2_grpc.HelloServiceStub(channel))
            for item in result:
                if isinstance(item, grpc.aio.Call):
                    item.code_now = await item.code()
                    item.trailer_now = await item.trailing_metadata()
            return result
    finally:
        await server.stop(None)


def test_a_stream_the_caller_cancels_is_logged_as_cancelled(logs):
    streams = OpenStreams()

    async def scenario(stub):
        # A long interval: the cancel reaches the server while it waits for the second tick.
        call = stub.Ticks(hello_pb2.TicksRequest(client_id="c", stream=2, interval_ms=60_000))
        await call.read()
        call.cancel()
        await asyncio.wait_for(streams.none_open(), 10)

    serve(HelloServicer(IDENTITY, 0, streams=streams), scenario)
    (line,) = [e for e in rpc_lines(logs) if e["event"] == "rpc.stream_ended"]
    assert (line["stream"], line["end"], line["ticks"]) == (2, "cancelled", 1)


def test_a_failing_server_answers_its_code_at_its_rate(logs):
    faults = Faults(error_rate=0.5, error_code="RESOURCE_EXHAUSTED")

    async def scenario(stub):
        codes = []
        for n in range(1, 7):
            try:
                await stub.Hello(hello_pb2.HelloRequest(client_id="c", counter=n))
                codes.append("OK")
            except grpc.aio.AioRpcError as error:
                # An error has no response: the trailer says which server sent it.
                codes.append((error.code().name, error.trailing_metadata()[trailers.SERVER_ID_KEY]))
        return codes

    codes = serve(HelloServicer(IDENTITY, 0, faults=faults, load=LoadMeter()), scenario)
    assert codes == ["OK", ("RESOURCE_EXHAUSTED", "server-1")] * 3
    faulted = [e for e in rpc_lines(logs) if e["event"] == "rpc.faulted"]
    assert [(e["counter"], e["call"], e["code"]) for e in faulted] == [
        (2, 2, "RESOURCE_EXHAUSTED"),
        (4, 4, "RESOURCE_EXHAUSTED"),
        (6, 6, "RESOURCE_EXHAUSTED"),
    ]


def test_a_failing_server_refuses_streams_too(logs):
    faults = Faults(error_rate=1.0, error_code="UNAVAILABLE")

    async def scenario(stub):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Ticks(hello_pb2.TicksRequest(client_id="c")).read()
        return caught.value.code()

    assert serve(HelloServicer(IDENTITY, 0, faults=faults), scenario) == grpc.StatusCode.UNAVAILABLE
    assert event_names(logs) == ["rpc.faulted"]


def test_fault_latency_is_added_to_the_work_and_logged(logs):
    waited = []

    async def work(seconds):
        waited.append(seconds)

    servicer = HelloServicer(IDENTITY, 0.1, work=work, faults=Faults(latency=0.5))
    call(servicer, hello_pb2.HelloRequest(client_id="c"))
    assert waited == [pytest.approx(0.6)]
    (line,) = rpc_lines(logs)
    assert line["fault_latency_ms"] == 500.0


def test_a_grpc_caller_gets_its_answers_as_usual_and_never_sees_the_orca_trailer(logs):
    """grpc's client takes the report for its balancers; the application sees other metadata
    only. (The trailer itself, on the wire: test_orca_wire.)"""
    servicer = HelloServicer(IDENTITY, 0, load=LoadMeter())

    async def scenario(stub):
        seen = []
        for client_id in ("c", "c", ""):
            call = stub.Hello(hello_pb2.HelloRequest(client_id=client_id))
            with contextlib.suppress(grpc.aio.AioRpcError):
                await call
            seen.append(((await call.code()).name, dict(await call.trailing_metadata())))
            await asyncio.sleep(0.11)  # past the meter's refresh: a non-empty report
        return seen

    assert serve(servicer, scenario) == [
        ("OK", {}),
        ("OK", {}),
        ("INVALID_ARGUMENT", {trailers.SERVER_ID_KEY: "server-1"}),
    ]
