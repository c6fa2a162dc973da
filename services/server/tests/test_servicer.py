"""The servicer behind a real in-process grpc.aio server on loopback."""

import asyncio
import io
import json
import logging

import grpc
import pytest
import structlog
from hello_server.servicer import MAX_CLIENT_ID_LENGTH, HelloServicer, ServerIdentity
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
    (line,) = [json.loads(x) for x in logs.getvalue().splitlines()]
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
    events = [json.loads(x)["event"] for x in logs.getvalue().splitlines()]
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
    lines = [json.loads(x) for x in logs.getvalue().splitlines()]
    failed = [line for line in lines if line["event"] == "rpc.failed"]
    assert len(failed) == 1
    assert failed[0]["exception"][0]["exc_type"] == "ZeroDivisionError"
