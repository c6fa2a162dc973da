"""What a user chooses for a lab run: its addresses and phase lengths, and overrides.

The CLI takes its defaults from these types, so a default is written once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hellolb_lab.errors import LabError


@dataclass(frozen=True)
class Net:
    """The lab's own addresses: one 127.X.Y.0/24 block and the DNS port.

    DNS ``.1``, the xDS control plane ``.2``, servers ``.11-.19`` (the tenth and later, a
    rollout's new pods, ``.110`` on), proxies ``.21-.29``, the virtual ClusterIP ``.30``,
    sidecars ``.41-.49``.
    """

    prefix: str = "127.0.10"
    dns_port: int = 5353

    def __post_init__(self) -> None:
        if not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}", self.prefix) or any(
            int(p) > 255 for p in self.prefix.split(".")
        ):
            raise LabError(f"--net must look like 127.X.Y (a /24 on loopback), got {self.prefix!r}")

    @property
    def dns(self) -> tuple[str, int]:
        return (f"{self.prefix}.1", self.dns_port)

    def server(self, i: int) -> str:
        if not 1 <= i <= 155:
            raise LabError(f"the lab has addresses for servers 1 to 155, not {i}")
        return f"{self.prefix}.{10 + i if i < 10 else 100 + i}"

    def proxy(self, i: int) -> str:
        return f"{self.prefix}.{20 + i}"

    @property
    def control_plane(self) -> str:
        return f"{self.prefix}.2"

    @property
    def vip(self) -> str:
        return f"{self.prefix}.30"

    def sidecar(self, i: int) -> str:
        return f"{self.prefix}.{40 + i}"


@dataclass(frozen=True)
class Options:
    """Phase lengths (seconds) and overrides; the defaults keep a tour near a minute and a half.

    ``after=None`` derives the phase after the scale-up from the settings: the bound within which
    the new servers must be reached (the phase ends ``steady`` seconds after they all were), or
    ``headless_after`` where nothing is expected to reach them. ``scale_to`` and
    ``proxy_scale_to`` are the replicas after the scale-ups, in the lab and on a cluster.
    ``phases`` chooses which of a scenario's phases after the scale-up run (``None``: all of
    them), ``skip`` leaves some out; ``settle`` is how long the run goes on after the servers
    left (the last old server exited, or the crashed one answers again). ``outage`` is how long
    the xDS control plane stays down in its restart phase, once the added server is published.
    """

    warmup: float = 4.0
    after: float | None = None
    headless_after: float = 6.0
    steady: float = 3.0
    idle: float = 4.0
    restart: float = 4.0
    settle: float = 4.0
    outage: float = 3.0
    scale_to: int = 5
    proxy_scale_to: int = 3
    summary_interval: str = "2s"
    #: The client's ``CLIENT_MODE`` (``None``: the overlay's): ``streams`` runs every phase
    #: with Ticks streams instead of unary calls, judged by the stream checks.
    client_mode: str | None = None
    work_time: str | None = None
    round_interval: str | None = None
    server_env: dict[str, str] = field(default_factory=dict)
    client_env: dict[str, str] = field(default_factory=dict)
    net: Net = field(default_factory=Net)
    log_dir: Path | None = None
    k8s_dir: Path | None = None
    startup_timeout: float = 30.0
    phases: tuple[str, ...] | None = None
    skip: tuple[str, ...] = ()
