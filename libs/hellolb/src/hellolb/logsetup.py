"""structlog set-up shared by the services: JSON lines on stdout, one object per event.

grpc's own messages go through the standard ``logging`` module; a
``ProcessorFormatter`` on the root logger renders them with the same processors,
so everything a process prints is one JSON object per line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("auto", "json", "console")


class UtcTimestamp:
    """``timestamp``: the time in ISO 8601, UTC, to the microsecond (``...T18:04:05.123456Z``).

    structlog's ``TimeStamper(fmt="iso", utc=True)`` writes the same, but formats the whole
    date and time for every line; this formats it once per second and adds the fraction.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        event_dict["timestamp"] = f"{self._prefix}.{int((now - second) * 1e6):06d}Z"
        return event_dict


class LineWriter:
    """Writes each event as a line, and flushes once per turn of the running event loop.

    structlog's ``WriteLogger`` flushes after every line: one write system call per line, and
    the interpreter's lock let go at each one, which grpc's own threads are waiting for. Inside
    a running asyncio loop this writes the line at once but flushes in a callback that the loop
    runs after the callbacks already due, so the lines of one turn (a round's answers) go out
    in one write. Outside a loop, every line is flushed at once.
    """

    def __init__(self, stream: TextIO) -> None:
        self._write = stream.write
        self._flush = stream.flush
        self._lock = threading.Lock()
        self._scheduled: asyncio.AbstractEventLoop | None = None

    def msg(self, message: str) -> None:
        with self._lock:
            self._write(message + "\n")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        if self._scheduled is not loop:
            self._scheduled = loop
            loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._scheduled = None
        self._flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        UtcTimestamp(),
    ]


# orjson as the standard library would: other keys than strings become strings, and a datetime
# or a dataclass goes to structlog's fallback (its repr) rather than orjson's own form.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
_ORJSON_OPTIONS |= orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(obj: Any, default: Callable[[Any], Any] | None = None) -> str:
    """``json.dumps(obj, default=default)``, the same JSON at a fifth of its cost.

    A log line per answer makes the serializer part of the client's cost per call. Where
    orjson's text would differ from the standard library's (a character outside ASCII, which
    ``json.dumps`` escapes; an integer beyond 64 bits, which orjson refuses), the standard
    library writes the line.
    """
    try:
        text = orjson.dumps(obj, default=default, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return json.dumps(obj, default=default)
    return text if text.isascii() else json.dumps(obj, default=default)


def _renderer(fmt: str, stream: TextIO) -> Processor:
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    if console:
        return structlog.dev.ConsoleRenderer()
    return structlog.processors.JSONRenderer(serializer=dumps)


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and the standard logging module to ``stream`` (stdout by default)."""
    stream = stream or sys.stdout
    numeric = logging.getLevelNamesMapping()[level.upper()]
    renderer = _renderer(fmt, stream)
    exceptions: list[Processor] = [] if fmt == "console" else [structlog.processors.dict_tracebacks]

    structlog.configure(
        processors=[*_shared_processors(), *exceptions, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *_: LineWriter(stream),
        cache_logger_on_first_use=True,
    )

    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_shared_processors(), structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *exceptions,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)


def configure_early(environ: Mapping[str, str] | None = None) -> None:
    """Best-effort logging before the configuration is validated.

    Uses LOG_LEVEL and LOG_FORMAT when they are valid and falls back to
    ``info``/``auto`` otherwise, so that a configuration error is itself logged in
    the format the user asked for whenever possible.
    """
    env = os.environ if environ is None else environ
    level = (env.get("LOG_LEVEL") or "info").strip().lower()
    fmt = (env.get("LOG_FORMAT") or "auto").strip().lower()
    configure_logging(
        level if level in LEVELS else "info",
        fmt if fmt in FORMATS else "auto",
    )


def bind_context(**fields: object) -> None:
    """Add fields (such as ``scenario``) to every following log line of this process."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v})
