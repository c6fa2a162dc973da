"""``python -m hello_server``: validate the configuration, serve, stop cleanly."""

from __future__ import annotations

import asyncio
import sys

import structlog
from hellolb.logsetup import bind_context
from hellolb.reload import reexec
from hellolb.startup import load_config

from hello_server.config import ServerConfig
from hello_server.server import BindError, Stop, serve

EXIT_BIND = 1


def main() -> None:
    config = load_config(ServerConfig.from_env, "hello_server")
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
