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
    events.STREAM_OPENED: {events.TIMESTAMP, events.CLIENT_ID, events.STREAM, events.SERVER_ID},
    events.STREAM_ENDED: {
        events.TIMESTAMP,
        events.CLIENT_ID,
        events.STREAM,
        events.SERVER_ID,
        events.CODE,
        events.LIFETIME_SECONDS,
    },
    events.TICK: {events.TIMESTAMP, events.STREAM, events.SERVER_ID},
}
#: What every summary carries, and what stream mode adds.
SUMMARY_FIELDS = {
    events.MODE,
    events.SHARE_BY_SERVER_WINDOW,
    events.LATENCY_MS_P50,
    events.LATENCY_MS_P90,
    events.LATENCY_MS_P99,
}
STREAM_SUMMARY_FIELDS = {
    events.STREAMS_BY_SERVER,
    events.STREAM_ENDS_TOTAL,
    events.RECONNECTS_TOTAL,
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
    for summary in client.named(events.SUMMARY):
        assert summary.keys() >= SUMMARY_FIELDS
        assert summary[events.MODE] == "rounds"


def test_a_stream_run_writes_only_declared_events_with_the_declared_fields(spawn, port):
    server = spawn("hello_server", BIND_ADDRESS="127.0.0.1", PORT=str(port), WORK_TIME="0")
    server.wait_event("server.started", timeout=15)
    client = spawn(
        "hello_client",
        SERVER_ADDRESS=f"127.0.0.1:{port}",
        CLIENT_MODE="streams",
        CONCURRENCY="2",
        TICK_INTERVAL="50ms",
        MAX_DURATION="1s",
    )
    assert client.wait(timeout=30) == 0
    written = {e["event"] for e in client.events}
    assert written <= DECLARED, written - DECLARED
    assert {events.STREAM_OPENED, events.TICK, events.STREAM_ENDED, events.SUMMARY} <= written
    for event in client.events:
        missing = FIELDS.get(event["event"], set()) - event.keys()
        assert not missing, f"{event['event']} lacks {missing}"
    for summary in client.named(events.SUMMARY):
        assert summary.keys() >= SUMMARY_FIELDS | STREAM_SUMMARY_FIELDS
        assert summary[events.MODE] == "streams"


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
