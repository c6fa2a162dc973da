"""Trailing metadata the server adds to an error it answers itself, for the client to read."""

from __future__ import annotations

#: The id of the server that refused or failed the call (an injected fault, a bad request).
#: An error carries no response, so without it a client could not tell which server failed.
SERVER_ID_KEY = "hellolb-server-id"
