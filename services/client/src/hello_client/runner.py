"""Where the rounds loop and its call used to live: :mod:`hello_client.rounds` and
:mod:`hello_client.caller` now. The names others import from here still resolve."""

from __future__ import annotations

from hello_client.caller import CLIENT_EXCEPTION, FAILED_ROUND_PAUSE, failed_by

__all__ = ["CLIENT_EXCEPTION", "FAILED_ROUND_PAUSE", "failed_by"]
