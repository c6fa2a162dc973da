"""``hellolb-lab uneven``: the balancers side by side on one slow or failing server.

The defaults are those of :class:`~hellolb_lab.uneven.Setup`, so that a default is written once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hellolb_lab import balancers, uneven

DEFAULTS = uneven.Setup()


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "uneven",
        help="one of three servers slow or failing: every balancer side by side, one table",
        description="Three servers per balancer, the third one slow or failing, a closed-loop "
        "client each; every balancer on its own loopback block, all at once. Prints the bad "
        "server's share of the calls, answers per second, latency percentiles and errors, "
        "with ratios against grpc round_robin from the same run.",
    )
    d = DEFAULTS
    p.add_argument(
        "--fault",
        choices=(*balancers.FAULTS, "both"),
        default="both",
        help="slow: the third server takes --slowdown times as long; failing: it answers every "
        "call at once with --error-code; both: one after the other (default)",
    )
    p.add_argument(
        "--balancers",
        type=_names,
        default=None,
        metavar="NAME,...",
        help=f"which balancers (default: all): {', '.join(balancers.names())}",
    )
    p.add_argument("--callers", type=int, default=d.callers, help=f"per client ({d.callers})")
    p.add_argument(
        "--work-time",
        type=float,
        default=d.work_time_ms,
        metavar="MS",
        help=f"each server's work per call, ms ({d.work_time_ms:g})",
    )
    p.add_argument(
        "--slowdown", type=float, default=d.slowdown, help=f"slow: times slower ({d.slowdown:g})"
    )
    p.add_argument(
        "--error-code", default=d.error_code, help=f"failing: the status code ({d.error_code})"
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=d.warmup_s,
        help=f"seconds before measuring ({d.warmup_s:g}; at least {balancers.settle_seconds():g})",
    )
    p.add_argument(
        "--measure", type=float, default=d.measure_s, help=f"seconds measured ({d.measure_s:g})"
    )
    p.add_argument(
        "--net",
        default=d.net,
        help=f"the first balancer's 127.X.Y block; the next ones count Y up ({d.net})",
    )
    p.add_argument("--k8s", type=Path, default=None, help="the k8s/ folder (found from cwd)")
    p.add_argument("--logs", type=Path, default=None, help="folder for process logs")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the figures")
    p.set_defaults(func=cmd)


def cmd(args: argparse.Namespace) -> int:
    faults = balancers.FAULTS if args.fault == "both" else (args.fault,)
    results = []
    for fault in faults:
        logs = args.logs / fault if args.logs is not None else None
        setup = uneven.Setup(
            fault=fault,
            work_time_ms=args.work_time,
            slowdown=args.slowdown,
            error_code=args.error_code,
            callers=args.callers,
            warmup_s=args.warmup,
            measure_s=args.measure,
            balancers=args.balancers,
            net=args.net,
            log_dir=logs,
            k8s_dir=args.k8s,
        )
        comparison = uneven.run(setup)
        print("\n" + uneven.format_table(comparison))
        print(f"  logs: {comparison.log_dir}\n")
        results.append(comparison.to_dict())
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0
