"""Re-execute the running Python process in place: the live-update restart.

Skaffold and Tilt copy edited ``.py`` files into the container and then send
SIGHUP to PID 1. The service stops cleanly and calls :func:`reexec`, which
replaces the process image with a fresh interpreter running the same command, so
the new code is loaded while the container, its PID and its pod stay as they are.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def reexec() -> NoReturn:
    """Replace this process with a new run of the same command line."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = list(sys.orig_argv)
    os.execv(sys.executable, [sys.executable, *argv[1:]])  # noqa: S606 - same command, new image
