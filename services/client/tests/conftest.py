"""Fixtures shared by the client's tests."""

import io
import json
import logging

import pytest
import structlog
from hellolb.logsetup import configure_logging


class Lines(io.StringIO):
    """A buffer the services' JSON logging writes into, read back as events."""

    def isatty(self):
        return False

    def events(self):
        """Every JSON line written so far."""
        return [json.loads(line) for line in self.getvalue().splitlines()]

    def take(self):
        """The JSON lines written since the previous take."""
        text = self.getvalue()
        self.seek(0)
        self.truncate()
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def log_lines():
    """The services' JSON logging, into a buffer; structlog's defaults after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = Lines()
    configure_logging("info", "json", stream)
    yield stream
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level
