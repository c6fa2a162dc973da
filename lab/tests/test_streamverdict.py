"""The stream figures from client log events: streams, their ends, and a phase's view of them."""

from __future__ import annotations

from hellolb_lab import clientlog, streamverdict
from hellolb_lab.measure import Window

T0 = 1_900_000_000.0


def opened(t: float, stream: int, server: str, reconnect: float | None = None) -> dict:
    return {
        "event": "client.stream_opened",
        "timestamp": t,
        "client_id": "c",
        "stream": stream,
        "server_id": server,
        "reconnect_seconds": reconnect,
    }


def ended(t: float, stream: int, server: str, code: str, **fields) -> dict:
    return {
        "event": "client.stream_ended",
        "timestamp": t,
        "client_id": "c",
        "stream": stream,
        "server_id": server,
        "code": code,
        "details": fields.get("details", ""),
        "end_reason": fields.get("end_reason", ""),
        "ticks": fields.get("ticks", 3),
        "error": fields.get("error", False),
        "by_client": fields.get("by_client", False),
    }


def test_ends_are_named_by_code_and_by_the_servers_reason():
    events = [
        opened(T0, 1, "a"),
        opened(T0, 2, "a"),
        opened(T0, 3, "b"),
        ended(T0 + 5, 1, "a", "OK", end_reason="drain"),
        ended(T0 + 5, 2, "a", "UNAVAILABLE", details="max connection age"),
        ended(T0 + 5, 3, "b", "UNAVAILABLE", details="Socket closed"),
    ]
    lives, _ = clientlog.stream_lives(events)
    labels = [streamverdict.end_label(s) for s in lives]
    assert labels == ["OK (drain)", "UNAVAILABLE (max age)", "UNAVAILABLE"]


def test_an_end_before_the_first_tick_is_a_failed_open_not_a_stream():
    events = [ended(T0, 1, "a", "UNAVAILABLE", ticks=0, error=True)]
    lives, failed = clientlog.stream_lives(events)
    assert lives == []
    assert [(f.code, f.error) for f in failed] == [("UNAVAILABLE", True)]


def test_a_stream_counts_as_open_from_its_first_tick_until_it_ends():
    events = [opened(T0 + 1, 1, "a"), ended(T0 + 4, 1, "a", "OK"), opened(T0 + 2, 2, "b")]
    lives, _ = clientlog.stream_lives(events)
    assert streamverdict.open_at(lives, T0) == {}
    assert streamverdict.open_at(lives, T0 + 3) == {"a": 1, "b": 1}
    assert streamverdict.open_at(lives, T0 + 4) == {"b": 1}


def test_a_phase_counts_ends_reconnects_and_the_killed_servers_streams():
    events = [
        opened(T0, 1, "a"),
        opened(T0, 2, "b"),
        ended(T0 + 10, 1, "a", "INTERNAL", error=True),
        opened(T0 + 10.5, 3, "c", reconnect=0.5),
        # the client's own stop is no end of a stream
        ended(T0 + 12, 2, "b", "CANCELLED", by_client=True),
    ]
    lives, failed = clientlog.stream_lives(events)
    window = Window("crash", T0 + 9, T0 + 11, T0 + 13, ("b", "c"), facts={"killed": "a"})
    w = streamverdict.window_figures(window, lives, failed)
    assert w["ends"] == {"INTERNAL": 1}
    assert w["errors"] == 1
    assert (w["killed_held"], w["killed_ends"], w["other_ends"]) == (1, {"INTERNAL": 1}, {})
    assert w["reconnect_s_max"] == 0.5
    assert w["open_after"] == {"c": 1}


def test_a_slot_between_two_streams_still_counts_as_holding_one():
    events = [
        opened(T0, 1, "a"),
        opened(T0, 2, "b"),
        ended(T0 + 9.9, 1, "a", "UNAVAILABLE", details="max connection age"),
        opened(T0 + 10.05, 3, "c", reconnect=0.15),
    ]
    lives, _ = clientlog.stream_lives(events)
    assert streamverdict.open_at(lives, T0 + 10) == {"b": 1}
    # the latest moment of the second before with the most streams open: just before the cut
    assert streamverdict.settled_open(lives, T0 + 10) == {"a": 1, "b": 1}
    assert streamverdict.settled_open(lives, T0 + 10.1) == {"b": 1, "c": 1}
