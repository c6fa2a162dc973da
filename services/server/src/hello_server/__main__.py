"""``python -m hello_server``: validate the configuration, serve, stop cleanly."""

from __future__ import annotations

import asyncio
import sys

import structlog
from hellolb.config import ConfigError, exit_on_config_error
from hellolb.logsetup import bind_context, configure_early, configure_logging
from hellolb.reload import reexec

from hello_server.config import ServerConfig
from hello_server.server import BindError, Stop, serve

EXIT_BIND = 1


def main() -> None:
    configure_early()
    try:
        config = ServerConfig.from_env()
    except ConfigError as error:
        exit_on_config_error(error, "hello_server")
    configure_logging(config.log_level, config.log_format)
    bind_context(scenario=config.scenario, server_id=config.server_id)
    log = structlog.get_logger("hello_server")
    log.info("server.config", **config.as_log_fields())
    try:
        why = asyncio.run(serve(config))
    except BindError as error:
        log.error("server.bind_failed", error=str(error))
        sys.exit(EXIT_BIND)
    if why is Stop.RELOAD:
        log.info("server.reloading")
        reexec()


if __name__ == "__main__":
    main()
