"""The first step of every service: read its settings, then log in the format they ask for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from hellolb.config import ConfigError, exit_on_config_error
from hellolb.logsetup import configure_early, configure_logging


class LoggingSettings(Protocol):
    @property
    def log_level(self) -> str: ...

    @property
    def log_format(self) -> str: ...


Config = TypeVar("Config", bound=LoggingSettings)


def load_config(load: Callable[[], Config], service: str) -> Config:
    """Return ``load()``, or exit 2 with one ``config.invalid`` line when a value is bad."""
    configure_early()
    try:
        config = load()
    except ConfigError as error:
        exit_on_config_error(error, service)
    configure_logging(config.log_level, config.log_format)
    return config
