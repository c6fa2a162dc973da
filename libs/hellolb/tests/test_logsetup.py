import io
import json
import logging

import pytest
import structlog
from hellolb.logsetup import bind_context, configure_logging


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
