"""The lab's command-line options, with their defaults taken from :class:`Options` and
:class:`Net`, so that a default is written once."""

from __future__ import annotations

import argparse
from pathlib import Path

from hello_client.config import MODES as CLIENT_MODES
from hellolb.config import parse_duration

from hellolb_lab.options import Net, Options

DEFAULTS = Options()
NET = Net()
#: Options fields the command line sets under the same name.
SAME_NAME = (
    "warmup",
    "after",
    "steady",
    "idle",
    "restart",
    "settle",
    "outage",
    "scale_to",
    "proxy_scale_to",
    "summary_interval",
    "work_time",
    "client_mode",
)


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of phase names; ``none`` for none."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    return () if names == ("none",) else names


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_scale_options(p: argparse.ArgumentParser) -> None:
    """The replicas after the scale-ups, shared by the lab and the cluster check."""
    s = p.add_argument_group("scale-ups")
    s.add_argument(
        "--scale-to",
        type=int,
        default=DEFAULTS.scale_to,
        help=f"servers after the scale-up ({DEFAULTS.scale_to})",
    )
    s.add_argument(
        "--proxy-scale-to",
        type=int,
        default=DEFAULTS.proxy_scale_to,
        help=f"proxy replicas after the proxy scale-up ({DEFAULTS.proxy_scale_to})",
    )


def add_client_mode(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The client's mode, shared by the lab and the cluster check."""
    p.add_argument(
        "--client-mode",
        choices=CLIENT_MODES,
        default=DEFAULTS.client_mode,
        help="the client's CLIENT_MODE instead of the overlay's; 'streams' keeps Ticks "
        "streams open and judges what each phase does to them",
    )


def _add_phases(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("phases (seconds)")
    d = DEFAULTS
    g.add_argument(
        "--warmup", type=float, default=d.warmup, help=f"before the scale-up ({d.warmup:g})"
    )
    g.add_argument(
        "--after",
        type=float,
        default=d.after,
        help="after the scale-up; default: the bound derived from the settings (ends early "
        f"once every new server answered), or {d.headless_after:g} where there is none",
    )
    g.add_argument(
        "--steady",
        type=float,
        default=d.steady,
        help=f"kept after all new servers answered ({d.steady:g})",
    )
    g.add_argument(
        "--idle", type=float, default=d.idle, help=f"after the proxy scale-up ({d.idle:g})"
    )
    g.add_argument(
        "--restart", type=float, default=d.restart, help=f"after a client restart ({d.restart:g})"
    )
    g.add_argument(
        "--settle",
        type=float,
        default=d.settle,
        help=f"after the rollout's last old server exited, and after a crash ({d.settle:g})",
    )
    g.add_argument(
        "--phases",
        type=_names,
        default=d.phases,
        metavar="NAME,...",
        help="run only these of the scenario's phases after the scale-up (default: all; "
        "'none' for none), e.g. --phases rollout",
    )
    g.add_argument(
        "--skip",
        type=_names,
        default=d.skip,
        metavar="NAME,...",
        help="leave these phases out, e.g. --skip crash",
    )
    g.add_argument(
        "--outage",
        type=float,
        default=d.outage,
        help=f"xds: the control plane down, after a server is published ({d.outage:g})",
    )


def _add_settings(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("settings")
    s.add_argument(
        "--summary-interval",
        type=_duration,
        default=DEFAULTS.summary_interval,
        help=f"client SUMMARY_INTERVAL in the lab ({DEFAULTS.summary_interval}; the overlay's "
        "suits a cluster)",
    )
    s.add_argument("--work-time", type=_duration, help="server WORK_TIME instead of the overlay's")
    add_client_mode(s)
    for side in ("server", "client"):
        s.add_argument(
            f"--{side}-env",
            type=_env_pair,
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help=f"override a {side} variable from the overlay (repeatable)",
        )
    s.add_argument("--net", default=NET.prefix, help=f"the lab's 127.X.Y.0/24 block ({NET.prefix})")
    s.add_argument(
        "--dns-port", type=int, default=NET.dns_port, help=f"lab DNS port ({NET.dns_port})"
    )
    s.add_argument("--k8s", type=Path, default=None, help="the k8s/ folder (found from cwd)")
    s.add_argument("--logs", type=Path, default=None, help="folder for process logs")


def add_lab_options(p: argparse.ArgumentParser) -> None:
    """Every option of a lab run: phases, scale-ups, settings and output."""
    _add_phases(p)
    add_scale_options(p)
    _add_settings(p)
    o = p.add_argument_group("output")
    o.add_argument("--json", type=Path, default=None, metavar="FILE", help="write measurements")
    o.add_argument(
        "--assert",
        dest="check",
        action="store_true",
        help="exit 1 unless the expected behaviour appeared",
    )
    o.add_argument("--plain", action="store_true", help="no live redraw, even on a terminal")


def options_from(args: argparse.Namespace, scenario: str | None = None) -> Options:
    """The options the command line gave; ``scenario`` gets its own folder under ``--logs``."""
    given = vars(args)
    logs = given.get("logs")
    if logs is not None and scenario:
        logs = logs / scenario
    return Options(
        **{name: given[name] for name in SAME_NAME if name in given},
        phases=given.get("phases"),
        skip=given.get("skip") or (),
        server_env=dict(given.get("server_env") or []),
        client_env=dict(given.get("client_env") or []),
        net=Net(given.get("net", NET.prefix), given.get("dns_port", NET.dns_port)),
        log_dir=logs,
        k8s_dir=given.get("k8s"),
    )
