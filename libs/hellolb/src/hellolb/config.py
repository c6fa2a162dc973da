"""Read settings from environment variables, with one clear error per bad value.

Each service describes its settings as a frozen dataclass and fills it through an
:class:`Env`. The first bad value raises :class:`ConfigError`, which names the
variable, the value it got and what it accepts; :func:`exit_on_config_error` turns
that into one log line and exit code 2.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping
from typing import NoReturn

import structlog

EXIT_CONFIG = 2

_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_NUMBER = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
_DURATION = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s|m|h)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_HELP = "a duration such as 250ms, 10s, 1.5m or 2h (or 0)"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration variable holds a value the service cannot use."""

    def __init__(self, variable: str, value: str, expected: str) -> None:
        super().__init__(f"{variable}={value!r}: expected {expected}")
        self.variable = variable
        self.value = value
        self.expected = expected


def parse_duration(text: str) -> float:
    """Return the number of seconds in ``text`` (``250ms``, ``10s``, ``1.5m``, ``2h``, ``0``).

    Raises ValueError for anything else, negative values included.
    """
    text = text.strip()
    if text == "0":
        return 0.0
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    seconds = float(match["num"]) * _UNIT_SECONDS[match["unit"]]
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite duration: {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The inverse of :func:`parse_duration`, for logs and generated settings."""
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


class Env:
    """Typed access to a mapping of environment variables.

    An unset variable and an empty one both mean "use the default".
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def string(self, name: str, default: str, *, max_length: int = 253) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if len(value) > max_length or not value.isprintable():
            raise ConfigError(name, value, f"printable text of at most {max_length} characters")
        return value

    def first(self, names: Iterable[str], default: str) -> str:
        """The first of ``names`` that is set, else ``default``."""
        for name in names:
            if self.raw(name) is not None:
                return self.string(name, default)
        return default

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        expected = _int_range(minimum, maximum)
        if not _INTEGER.match(value):  # int() would also take "1_000" or non-ASCII digits
            raise ConfigError(name, value, expected)
        number = int(value)
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise ConfigError(name, value, expected)
        return number

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        """A plain decimal number (``0.25``, ``3``) from ``minimum`` to ``maximum``."""
        value = self.raw(name)
        if value is None:
            return default
        expected = f"a number from {minimum:g} to {maximum:g}, such as {(minimum + maximum) / 4:g}"
        if not _NUMBER.match(value):  # float() would also take "nan", "1e3" or "-0"
            raise ConfigError(name, value, expected)
        number = float(value)
        if not minimum <= number <= maximum:
            raise ConfigError(name, value, expected)
        return number

    def duration(
        self, name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
    ) -> float:
        value = self.optional_duration(name, minimum=minimum, maximum=maximum)
        return default if value is None else value

    def optional_duration(
        self, name: str, *, minimum: float = 0.0, maximum: float | None = None
    ) -> float | None:
        value = self.raw(name)
        if value is None:
            return None
        expected = DURATION_HELP
        if minimum > 0:
            expected += f", at least {format_duration(minimum)}"
        if maximum is not None:
            expected += f", at most {format_duration(maximum)}"
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise ConfigError(name, value, expected) from None
        if seconds < minimum or (maximum is not None and seconds > maximum):
            raise ConfigError(name, value, expected)
        return seconds

    def choice(self, name: str, default: str, choices: Iterable[str]) -> str:
        options = tuple(choices)
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() not in options:
            raise ConfigError(name, value, "one of " + ", ".join(options))
        return value.lower()

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigError(name, value, "true or false")


def _int_range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"a whole number from {minimum} to {maximum}"
    if minimum is not None:
        return f"a whole number of at least {minimum}"
    if maximum is not None:
        return f"a whole number of at most {maximum}"
    return "a whole number"


def exit_on_config_error(error: ConfigError, service: str) -> NoReturn:
    """Log ``error`` as one ``config.invalid`` line and exit with code 2."""
    structlog.get_logger(service).error(
        "config.invalid",
        variable=error.variable,
        value=error.value,
        expected=error.expected,
    )
    sys.exit(EXIT_CONFIG)
