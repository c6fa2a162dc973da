"""``python -m hello_client``: validate the configuration and run the client loop."""

from __future__ import annotations

import asyncio
import sys

import structlog
from hellolb.logsetup import bind_context
from hellolb.reload import reexec
from hellolb.startup import load_config

from hello_client import events
from hello_client.app import Outcome, run_client
from hello_client.config import ClientConfig


def main() -> None:
    config = load_config(ClientConfig.from_env, "hello_client")
    bind_context(scenario=config.scenario, client_id=config.client_id)
    log = structlog.get_logger("hello_client")
    log.info(events.CONFIG, **config.as_log_fields())
    outcome = asyncio.run(run_client(config))
    if outcome is Outcome.RELOAD:
        log.info(events.RELOADING)
        reexec()
    sys.exit(outcome.value)


if __name__ == "__main__":
    main()
