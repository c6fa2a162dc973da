"""The lab's one error type: a problem the user can fix."""

from __future__ import annotations


class LabError(Exception):
    """A problem the user can fix (a busy address, a missing binary, a bad option or overlay).

    The CLI prints it as one line and exits 2; nothing else in the lab catches it.
    """
