import asyncio
import io
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from hellolb.logsetup import LineWriter, UtcTimestamp, bind_context, configure_logging, dumps


@pytest.fixture
def stream():
    out = io.StringIO()
    configure_logging("info", "json", out)
    yield out
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_structlog_events_are_one_json_object_per_line(stream):
    structlog.get_logger("t").info("server.started", port=50051)
    structlog.get_logger("t").warning("rpc.invalid", reason="x")
    first, second = lines(stream)
    assert first["event"] == "server.started"
    assert first["port"] == 50051
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert second["level"] == "warning"


def test_bound_context_appears_on_every_line(stream):
    bind_context(scenario="headless", empty="")
    structlog.get_logger("t").info("a")
    logging.getLogger("grpc._cython").warning("b")
    assert [line["scenario"] for line in lines(stream)] == ["headless", "headless"]
    assert "empty" not in lines(stream)[0]


def test_standard_logging_from_grpc_comes_out_as_json(stream):
    logging.getLogger("grpc._server").warning("Exception iterating responses: %s", "boom")
    (line,) = lines(stream)
    assert line["event"] == "Exception iterating responses: boom"
    assert line["logger"] == "grpc._server"
    assert line["level"] == "warning"


def test_exceptions_are_rendered_as_structured_data(stream):
    try:
        raise KeyError("missing")
    except KeyError:
        structlog.get_logger("t").exception("rpc.failed")
    (line,) = lines(stream)
    assert line["exception"][0]["exc_type"] == "KeyError"


def test_level_filters_lower_events():
    out = io.StringIO()
    configure_logging("warning", "json", out)
    try:
        structlog.get_logger("t").info("hidden")
        structlog.get_logger("t").error("shown")
        assert [json.loads(x)["event"] for x in out.getvalue().splitlines()] == ["shown"]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


def test_console_format_is_not_json():
    out = io.StringIO()
    configure_logging("info", "console", out)
    try:
        structlog.get_logger("t").info("server.started", port=1)
        text = out.getvalue()
        assert "server.started" in text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


@dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1.5, None, True, 0.1], "c": {"d": "e"}, "t": (1, 2)},
        {1: "a key that is not a string"},
        {"text": "caf\u00e9 \u2603"},
        {"big": 2**70},
        {"when": datetime(2026, 1, 2, tzinfo=UTC), "what": Point(1, 2), "why": ValueError("x")},
    ],
)
def test_the_serializer_writes_what_the_standard_library_writes(value):
    fast, standard = dumps(value, default=repr), json.dumps(value, default=repr)
    assert json.loads(fast) == json.loads(standard)
    assert fast.isascii()


def test_a_number_that_is_not_finite_is_written_as_valid_json():
    assert json.loads(dumps({"x": float("inf"), "y": float("nan")})) == {"x": None, "y": None}


def test_timestamps_are_iso_utc_to_the_microsecond_and_follow_the_clock(stream):
    before = datetime.now(UTC)
    for _ in range(3):
        structlog.get_logger("t").info("a")
    after = datetime.now(UTC)
    stamps = [line["timestamp"] for line in lines(stream)]
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
    parsed = [datetime.fromisoformat(stamp) for stamp in stamps]
    # The process clock and the stamp agree to the microsecond it rounds down to.
    assert before - timedelta(microseconds=1) <= parsed[0] <= parsed[-1] <= after


def test_the_timestamp_moves_on_with_each_second(monkeypatch):
    stamp = UtcTimestamp()
    seen = []
    for now in (1000.5, 1000.75, 1001.25, 86400.0):
        monkeypatch.setattr(time, "time", lambda now=now: now)
        seen.append(stamp(None, "info", {})["timestamp"])
    assert seen == [
        "1970-01-01T00:16:40.500000Z",
        "1970-01-01T00:16:40.750000Z",
        "1970-01-01T00:16:41.250000Z",
        "1970-01-02T00:00:00.000000Z",
    ]


class CountedFlushes(io.StringIO):
    flushes = 0

    def flush(self):
        self.flushes += 1
        super().flush()


def test_lines_of_one_event_loop_turn_are_flushed_together_after_it():
    stream = CountedFlushes()
    writer = LineWriter(stream)

    async def answers():
        for n in range(10):
            writer.info(f"answer {n}")
        # Written in order, not yet flushed: the loop flushes once it gets back to its queue.
        assert (stream.getvalue().count("\n"), stream.flushes) == (10, 0)
        await asyncio.sleep(0)
        assert stream.flushes == 1
        writer.info("next turn")
        await asyncio.sleep(0)
        assert stream.flushes == 2

    asyncio.run(answers())
    writer.info("after the loop")
    assert stream.flushes == 3
    assert stream.getvalue().splitlines() == [
        *(f"answer {n}" for n in range(10)),
        "next turn",
        "after the loop",
    ]
