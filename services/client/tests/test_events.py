"""hello_client.events names what the client really writes: readers may rely on the constants."""

from hello_client import events

#: Every event name the module declares.
DECLARED = {
    value
    for name, value in vars(events).items()
    if name.isupper() and isinstance(value, str) and value.startswith(events.PREFIX)
}
FIELDS = {
    events.RESPONSE: {events.TIMESTAMP, events.CLIENT_ID, events.SERVER_ID, events.LATENCY_MS},
    events.SUMMARY: {
        events.TIMESTAMP,
        events.CLIENT_ID,
        events.BY_SERVER_WINDOW,
        events.ERRORS_TOTAL_COUNT,
        events.FINAL,
    },
    events.ERROR: {events.TIMESTAMP, events.CLIENT_ID, events.LATENCY_MS},
}


def test_a_real_run_writes_only_declared_events_with_the_declared_fields(spawn, port):
    server = spawn("hello_server", BIND_ADDRESS="127.0.0.1", PORT=str(port), WORK_TIME="0")
    server.wait_event("server.started", timeout=15)
    client = spawn(
        "hello_client",
        SERVER_ADDRESS=f"127.0.0.1:{port}",
        MAX_ROUNDS="3",
        CONCURRENCY="2",
        CLIENT_ID="c1",
    )
    assert client.wait(timeout=30) == 0
    written = {e["event"] for e in client.events}
    assert written <= DECLARED, written - DECLARED
    assert {events.CONFIG, events.READY, events.RESPONSE, events.SUMMARY, events.STOPPED} <= written
    for event in client.events:
        missing = FIELDS.get(event["event"], set()) - event.keys()
        assert not missing, f"{event['event']} lacks {missing}"


def test_a_failed_call_is_written_as_the_declared_error_event(spawn, port):
    server = spawn("hello_server", BIND_ADDRESS="127.0.0.1", PORT=str(port), WORK_TIME="2s")
    server.wait_event("server.started", timeout=15)
    client = spawn(
        "hello_client",
        SERVER_ADDRESS=f"127.0.0.1:{port}",
        MAX_ROUNDS="1",
        CONCURRENCY="1",
        RPC_TIMEOUT="100ms",
    )
    assert client.wait(timeout=30) == 0
    (error,) = client.named(events.ERROR)
    assert FIELDS[events.ERROR] <= error.keys()
