from hello_client.streamstats import StreamStats


def test_open_streams_are_counted_per_server_from_their_first_tick_to_their_end():
    streams = StreamStats()
    for server in ("s1", "s1", "s2"):
        streams.opened(server)
    streams.closed("s1")
    summary = streams.summary()
    assert summary["streams_open"] == 2
    assert summary["streams_by_server"] == {"s1": 1, "s2": 1}
    assert summary["streams_opened_total"] == 3
    assert summary["streams_opened_by_server_total"] == {"s1": 2, "s2": 1}
    streams.closed("s2")
    assert streams.summary()["streams_by_server"] == {"s1": 1}


def test_ends_lifetimes_and_reconnects_per_window_and_in_total():
    streams = StreamStats()
    streams.ended("OK", 3.0)
    streams.ended("UNAVAILABLE", 5.0)
    streams.ended("UNAVAILABLE", 1.0)
    streams.reconnected(0.25)
    first = streams.summary()
    assert first["stream_ends_window"] == {"OK": 1, "UNAVAILABLE": 2}
    assert first["stream_lifetime_seconds_p50"] == 3.0
    assert first["stream_lifetime_seconds_max"] == 5.0
    assert (first["reconnects_window"], first["reconnect_seconds_max"]) == (1, 0.25)

    streams.ended("OK", 2.0)
    second = streams.summary()
    assert second["stream_ends_window"] == {"OK": 1}
    assert second["stream_ends_total"] == {"OK": 2, "UNAVAILABLE": 2}
    assert second["stream_lifetime_seconds_max"] == 2.0
    assert (second["reconnects_window"], second["reconnects_total"]) == (0, 1)
    assert second["reconnect_seconds_p50"] is None
