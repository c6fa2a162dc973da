"""``hellolb-lab``: run, tour, watch and benchmark the load-balancing scenarios.

Exit codes: 0 done (and, with ``--assert``, every expectation held); 1 ``--assert`` and an
expectation failed; 2 the lab could not run (busy address, missing binary, bad option); 130
interrupted. Every process the lab started is stopped before it exits.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from hellolb.config import parse_duration

from hellolb_lab import bench, reader, scenarios, verdict
from hellolb_lab.procs import LabError
from hellolb_lab.view import LiveView, table


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _add_lab_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("phases (seconds)")
    g.add_argument("--warmup", type=float, default=4.0, help="before the scale-up (default 4)")
    g.add_argument(
        "--after",
        type=float,
        default=None,
        help="after the scale-up; default: the bound derived from the settings "
        "(maxage, proxy, sidecar; ends early once every new server answered) or 6",
    )
    g.add_argument("--steady", type=float, default=3.0, help="kept after all new servers answered")
    g.add_argument("--idle", type=float, default=4.0, help="proxy: after the proxy scale-up")
    g.add_argument("--restart", type=float, default=4.0, help="after the client restart")
    s = p.add_argument_group("settings")
    s.add_argument("--scale-to", type=int, default=5, help="servers after the scale-up (5)")
    s.add_argument("--proxy-scale-to", type=int, default=3, help="proxy replicas after (3)")
    s.add_argument(
        "--summary-interval",
        type=_duration,
        default="2s",
        help="client SUMMARY_INTERVAL in the lab (overlay: 5s; shorter shows more)",
    )
    s.add_argument("--work-time", type=_duration, help="server WORK_TIME instead of the overlay's")
    s.add_argument(
        "--server-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a server variable from the overlay (repeatable)",
    )
    s.add_argument(
        "--client-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a client variable from the overlay (repeatable)",
    )
    s.add_argument("--net", default="127.0.10", help="the lab's 127.X.Y.0/24 block (127.0.10)")
    s.add_argument("--dns-port", type=int, default=5353, help="lab DNS port (5353)")
    s.add_argument("--k8s", type=Path, default=None, help="the k8s/ folder (found from cwd)")
    s.add_argument("--logs", type=Path, default=None, help="folder for process logs")
    o = p.add_argument_group("output")
    o.add_argument("--json", type=Path, default=None, metavar="FILE", help="write measurements")
    o.add_argument(
        "--assert",
        dest="check",
        action="store_true",
        help="exit 1 unless the expected behaviour appeared",
    )
    o.add_argument("--plain", action="store_true", help="no live redraw, even on a terminal")


def _options(args: argparse.Namespace, scenario: str | None = None) -> scenarios.Options:
    logs = args.logs / scenario if args.logs is not None and scenario else args.logs
    return scenarios.Options(
        warmup=args.warmup,
        after=args.after,
        steady=args.steady,
        idle=args.idle,
        restart=args.restart,
        scale_to=args.scale_to,
        proxy_scale_to=args.proxy_scale_to,
        summary_interval=args.summary_interval,
        work_time=args.work_time,
        server_env=dict(args.server_env),
        client_env=dict(args.client_env),
        net=scenarios.Net(args.net, args.dns_port),
        log_dir=logs,
        k8s_dir=args.k8s,
    )


def _view(args: argparse.Namespace) -> LiveView:
    return LiveView(live=False if args.plain else None)


def _write_json(path: Path | None, data: Any) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"measurements written to {path}")


def _print_result(result: scenarios.RunResult) -> None:
    print(verdict.format_verdict(result.verdict, result.checks))
    if result.proxy_requests.get("total"):
        per = ", ".join(f"{p}={n}" for p, n in result.proxy_requests["total"].items())
        print(f"  requests per proxy replica: {per}")
    print(f"  logs: {result.log_dir}")


def cmd_run(args: argparse.Namespace) -> int:
    result = scenarios.run(args.scenario, _options(args), _view(args))
    _print_result(result)
    _write_json(args.json, result.to_dict())
    return 1 if args.check and not result.ok else 0


TOUR_COLUMNS = ("scenario", "first servers", "new servers", "balance after", "failed", "expected")


def _tour_row(result: scenarios.RunResult) -> dict[str, str]:
    v = result.verdict
    answered = sum(1 for n in v.servers_before.values() if n)
    if v.time_to_all_new is not None:
        new = f"all reached in {v.time_to_all_new:.1f}s"
    else:
        idle = sum(1 for t in v.reached.values() if t is None)
        new = f"{idle} of {len(v.new_servers)} never"
    if result.scenario == "clusterip":
        hit = sum(1 for t in v.reached.values() if t is not None)
        new = f"{hit} of {len(v.new_servers)}, by a new connection only"
    ratio = v.balance_after.ratio
    return {
        "scenario": result.scenario,
        "first servers": f"{answered} of {len(v.servers_before)} answered",
        "new servers": new,
        "balance after": "idle servers" if ratio == float("inf") else f"{ratio:.2f}",
        "failed": str(v.failed_rpcs),
        "expected": "yes" if result.ok else "NO",
    }


def cmd_tour(args: argparse.Namespace) -> int:
    results = []
    for name in scenarios.SCENARIOS:
        print(f"\n=== {name} ===")
        result = scenarios.run(name, _options(args, name), _view(args))
        _print_result(result)
        results.append(result)
    print("\n" + table([_tour_row(r) for r in results], TOUR_COLUMNS))
    _write_json(args.json, [r.to_dict() for r in results])
    return 1 if args.check and not all(r.ok for r in results) else 0


def cmd_watch(args: argparse.Namespace) -> int:
    state = reader.Reader(args.scenario)
    view = LiveView(live=False if args.plain else None)
    try:
        reader.read(sys.stdin, state, view)
    except KeyboardInterrupt:
        view.finish(state.picture)
    scale_at = reader.parse_when(args.scale_at) if args.scale_at else None
    result, checks = state.judge(
        scale_at=scale_at, expect_servers=args.expect_servers, reach_bound_s=args.bound
    )
    print(verdict.format_verdict(result, checks))
    print(f"  scale-up time: {result.extra['scale_at']}")
    _write_json(args.json, {"verdict": result.to_dict(), "checks": [c.__dict__ for c in checks]})
    return 1 if args.check and not all(c.ok for c in checks) else 0


def cmd_bench(args: argparse.Namespace) -> int:
    names = args.scenarios or list(scenarios.SCENARIOS)
    rows, results = bench.run(_options(args), names, lambda: LiveView(quiet=True))
    print(bench.format_rows(rows))
    _write_json(args.json, {"rows": rows, "runs": [r.to_dict() for r in results]})
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hellolb-lab",
        description="Reproduce the gRPC load-balancing scenarios on this machine and judge them.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    every = (*scenarios.SCENARIOS, *scenarios.CLUSTER_ONLY)
    run = sub.add_parser("run", help="run one scenario")
    run.add_argument("scenario", choices=every)
    _add_lab_options(run)
    run.set_defaults(func=cmd_run)
    tour = sub.add_parser("tour", help="every scenario in a row, then a comparison table")
    _add_lab_options(tour)
    tour.set_defaults(func=cmd_tour)
    watch = sub.add_parser("watch", help="read client logs from stdin (kubectl logs -f ...)")
    watch.add_argument("--scenario", required=True, choices=verdict.SCENARIOS)
    watch.add_argument("--scale-at", help="when the servers were scaled (ISO, epoch, HH:MM:SS UTC)")
    watch.add_argument("--expect-servers", type=int, help="server replicas after the scale-up")
    watch.add_argument("--bound", type=float, help="seconds within which new servers must answer")
    watch.add_argument("--json", type=Path, metavar="FILE")
    watch.add_argument("--assert", dest="check", action="store_true")
    watch.add_argument("--plain", action="store_true")
    watch.set_defaults(func=cmd_watch)
    b = sub.add_parser("bench", help="measure every scenario in one run")
    b.add_argument("--scenarios", nargs="*", choices=scenarios.SCENARIOS)
    _add_lab_options(b)
    b.set_defaults(func=cmd_bench)
    return p


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args))
    except LabError as exc:
        print(f"hellolb-lab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hellolb-lab: interrupted; every started process was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
