"""The ORCA trailer as it leaves a real server process, read with a bare HTTP/2 client.

grpc's own client consumes ``endpoint-load-metrics-bin`` (its balancers read it) and never
shows it to the application, so this reads the raw trailers instead: HTTP/2 frames over a
socket, decoded by the h2 library.
"""

import base64
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events
import pytest
from hellolb.v1 import hello_pb2
from xds.data.orca.v3.orca_load_report_pb2 import OrcaLoadReport

pytestmark = pytest.mark.slow

KEY = b"endpoint-load-metrics-bin"


def raw_hello(port: int, client_id: str = "raw") -> dict[bytes, bytes]:
    """One Hello call over bare HTTP/2; the response trailers, as sent (an error answer is
    trailers only: one HEADERS frame that ends the stream)."""
    message = hello_pb2.HelloRequest(client_id=client_id, counter=1).SerializeToString()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(
            1,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/hellolb.v1.HelloService/Hello"),
                (":authority", f"127.0.0.1:{port}"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ],
        )
        conn.send_data(1, struct.pack(">?I", False, len(message)) + message, end_stream=True)
        sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + 10
        last_headers: dict[bytes, bytes] = {}
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    last_headers = dict(event.headers)
                if isinstance(event, h2.events.StreamEnded):
                    return last_headers
                if isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
            sock.sendall(conn.data_to_send())
    raise AssertionError("no trailers within 10 s")


def decode(value: bytes) -> OrcaLoadReport:
    # Binary metadata travels base64-encoded, padding optional (gRPC over HTTP/2).
    return OrcaLoadReport.FromString(base64.b64decode(value + b"=" * (-len(value) % 4)))


def start(spawn, port, **env):
    server = spawn(
        "hello_server", BIND_ADDRESS="127.0.0.1", PORT=str(port), WORK_TIME="20ms", **env
    )
    server.wait_event("server.started", timeout=15)
    return server


def test_each_answer_carries_a_load_report_that_parses(spawn, port):
    start(spawn, port, ORCA_REPORTS="true")
    trailers = []
    for _ in range(4):
        trailers.append(raw_hello(port))
        time.sleep(0.15)  # the report is rebuilt at most every 100 ms
    assert all(t[b"grpc-status"] == b"0" for t in trailers)
    report = decode(trailers[-1][KEY])
    assert report.rps_fractional > 0
    # 20 ms of work per call: busy time is counted, and the process used some CPU.
    assert report.application_utilization > 0
    assert report.cpu_utilization > 0


def test_an_error_answer_carries_the_report_too(spawn, port):
    start(
        spawn,
        port,
        ORCA_REPORTS="true",
        FAULT_ERROR_RATE="1",
        FAULT_ERROR_CODE="RESOURCE_EXHAUSTED",
    )
    raw_hello(port)
    time.sleep(0.15)
    trailers = raw_hello(port)
    assert trailers[b"grpc-status"] == b"8"
    assert decode(trailers[KEY]).eps > 0


@pytest.mark.parametrize("env", [{}, {"ORCA_REPORTS": "false"}], ids=["default", "false"])
def test_orca_reports_off_means_no_trailer(spawn, port, env):
    start(spawn, port, **env)
    trailers = raw_hello(port)
    assert trailers[b"grpc-status"] == b"0"
    assert KEY not in trailers
