"""Faults a server can be told to inject, to stand for a slow or failing pod.

``FAULT_LATENCY`` is added to every call. ``FAULT_ERROR_RATE`` of the calls are answered at
once with ``FAULT_ERROR_CODE`` instead. Which calls fail is decided by a counter, not by chance:
the n-th call fails when ``floor(n * rate)`` goes up, so after any n calls exactly
``floor(n * rate)`` have failed, spread as evenly as the rate allows (0.25: the 4th, 8th, 12th
call...). A test or a lab run then sees the same failures every time, and a short run sees the
rate it asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import grpc

#: Codes a failing server may answer with: every status but OK.
ERROR_CODES = tuple(code.name for code in grpc.StatusCode if code is not grpc.StatusCode.OK)


@dataclass(frozen=True)
class Faults:
    """The fault settings; the defaults inject nothing."""

    latency: float = 0.0
    error_rate: float = 0.0
    error_code: str = "UNAVAILABLE"

    @property
    def status(self) -> grpc.StatusCode:
        return grpc.StatusCode[self.error_code]


class FaultPlan:
    """Decides, call after call, whether the next one fails; counts the calls it has seen."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.calls = 0

    def next_fails(self) -> bool:
        """Count one more call; True when it is one that must fail."""
        self.calls += 1
        rate = self.faults.error_rate
        if rate <= 0:
            return False
        # Products of a float rate can land a hair under a whole number (0.1 * 30 is
        # 3.0000000000000004, 0.7 * 10 is 7.000000000000001): round before flooring.
        return math.floor(round(self.calls * rate, 9)) > math.floor(
            round((self.calls - 1) * rate, 9)
        )
