"""structlog set-up shared by the services: JSON lines on stdout, one object per event.

grpc's own messages go through the standard ``logging`` module; a
``ProcessorFormatter`` on the root logger renders them with the same processors,
so everything a process prints is one JSON object per line.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

import structlog
from structlog.typing import Processor

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("auto", "json", "console")


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(fmt: str, stream: TextIO) -> Processor:
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    if console:
        return structlog.dev.ConsoleRenderer()
    return structlog.processors.JSONRenderer()


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and the standard logging module to ``stream`` (stdout by default)."""
    stream = stream or sys.stdout
    numeric = logging.getLevelNamesMapping()[level.upper()]
    renderer = _renderer(fmt, stream)
    exceptions: list[Processor] = [] if fmt == "console" else [structlog.processors.dict_tracebacks]

    structlog.configure(
        processors=[*_shared_processors(), *exceptions, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),
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
