"""``hellolb-lab``: run, tour, watch and benchmark the scenarios, and check one on a cluster.

Exit codes: 0 done (and, with ``--assert``, every expectation held; for ``e2e``, the scenario
behaved as expected); 1 an expectation failed; 2 the lab could not run (busy address, missing
binary, bad option); 130 interrupted. Every process the lab started is stopped before it exits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from hellolb_lab import bench, catalogue, chart, e2e, reader, rows, timeline, unevencmd
from hellolb_lab import overlay as overlays
from hellolb_lab.checks import passed
from hellolb_lab.cli import add_client_mode, add_lab_options, add_scale_options, options_from
from hellolb_lab.cluster import Cluster, command_runner
from hellolb_lab.errors import LabError
from hellolb_lab.outcome import RunResult
from hellolb_lab.report import format_verdict
from hellolb_lab.view import LiveView, series, table


def _view(args: argparse.Namespace) -> LiveView:
    return LiveView(live=False if args.plain else None)


def _write_json(path: Path | None, data: Any) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"measurements written to {path}")


def _print_result(result: RunResult) -> None:
    print(format_verdict(catalogue.get(result.scenario), result.verdict, result.checks))
    if result.proxy_requests:
        per = ", ".join(f"{p}={n}" for p, n in result.proxy_requests.items())
        print(f"  requests per proxy replica: {per}")
    pushes = result.xds_push_ms
    if pushes:
        per = ", ".join(f"{c} {'/'.join(f'{ms:g}' for ms in v)} ms" for c, v in pushes.items())
        print(f"  published -> pushed by the xDS control plane: {per}")
    print(f"  logs: {result.log_dir} (results: {result.results_path.name})")


def _chart_path(text: str) -> Path:
    """``--chart``/``--out``, refused before anything runs when its format is unknown."""
    try:
        return chart.output_path(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_chart(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--chart",
        type=_chart_path,
        metavar="FILE",
        help="draw the run as a chart (.svg or .png) from its saved results",
    )


def _write_chart(path: Path | None, results: dict[str, Any]) -> None:
    if path is not None:
        chart.save(results, path)
        print(f"chart written to {path}")


def cmd_run(args: argparse.Namespace) -> int:
    result = timeline.run(args.scenario, options_from(args), _view(args))
    _print_result(result)
    _write_json(args.json, result.to_dict())
    _write_chart(args.chart, result.to_dict())
    return 1 if args.check and not result.ok else 0


def cmd_tour(args: argparse.Namespace) -> int:
    results = []
    for name in catalogue.lab_names():
        print(f"\n=== {name} ===")
        result = timeline.run(name, options_from(args, name), _view(args))
        _print_result(result)
        results.append(result)
    print("\n" + table([rows.tour_row(r) for r in results], rows.TOUR_COLUMNS))
    _write_json(args.json, [r.to_dict() for r in results])
    return 1 if args.check and not all(r.ok for r in results) else 0


def cmd_watch(args: argparse.Namespace) -> int:
    scenario = catalogue.get(args.scenario)
    state = reader.Reader(scenario)
    view = _view(args)
    try:
        reader.read(sys.stdin, state, view)
    except KeyboardInterrupt:
        view.finish(state.picture)
    scale_at = reader.parse_when(args.scale_at) if args.scale_at else None
    result, checks = state.judge(
        scale_at=scale_at, expect_servers=args.expect_servers, reach_bound_s=args.bound
    )
    print(format_verdict(scenario, result, checks))
    print(f"  scale-up time: {state.scale_at_note}")
    picture = state.picture
    end = max((a.t for a in picture.answers), default=picture.start)
    data = {
        "scenario": scenario.name,
        "verdict": result.to_dict(),
        "checks": [c.__dict__ for c in checks],
        "picture": series(picture, end),
    }
    _write_json(args.json, data)
    _write_chart(args.chart, data)
    return 1 if args.check and not passed(checks) else 0


def cmd_bench(args: argparse.Namespace) -> int:
    table_rows, results = bench.run(options_from(args), args.scenarios, _quiet)
    print(bench.format_rows(table_rows))
    _write_json(args.json, {"rows": table_rows, "runs": [r.to_dict() for r in results]})
    return 0


def _quiet() -> LiveView:
    return LiveView(quiet=True)


def cmd_e2e(args: argparse.Namespace) -> int:
    missing = [tool for tool in e2e.TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(f"e2e: {', '.join(missing)} not found on PATH (see docs/cluster.md)")
    scenario = catalogue.get(args.scenario)
    k8s = args.k8s or overlays.find_k8s_dir()
    plan = e2e.plan_check(scenario, overlays.load(scenario.name, k8s), options_from(args))
    cluster = Cluster(scenario.namespace, command_runner(k8s.parent), args.context)
    try:
        result, checks = e2e.run_check(e2e.ClusterRun(plan, cluster), deploy=not args.no_deploy)
    finally:
        if not args.keep and not args.no_deploy:
            cluster.delete(scenario.name)
    print(format_verdict(scenario, result, checks))
    return 0 if passed(checks) else 1


def _add_watch(sub: argparse._SubParsersAction) -> None:
    watch = sub.add_parser("watch", help="read client logs from stdin (kubectl logs -f ...)")
    watch.add_argument("--scenario", required=True, choices=catalogue.names())
    watch.add_argument("--scale-at", help="when the servers were scaled (ISO, epoch, HH:MM:SS UTC)")
    watch.add_argument("--expect-servers", type=int, help="server replicas after the scale-up")
    watch.add_argument("--bound", type=float, help="seconds within which new servers must answer")
    watch.add_argument("--json", type=Path, metavar="FILE")
    watch.add_argument("--assert", dest="check", action="store_true")
    watch.add_argument("--plain", action="store_true")
    _add_chart(watch)
    watch.set_defaults(func=cmd_watch)


def cmd_chart(args: argparse.Namespace) -> int:
    _write_chart(args.out, chart.load(args.results))
    return 0


def _add_chart_command(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("chart", help="draw a run again from its saved results (results.json)")
    c.add_argument("results", type=Path, help="a run's results.json, or what watch --json wrote")
    c.add_argument("--out", type=_chart_path, required=True, metavar="FILE", help=".svg or .png")
    c.set_defaults(func=cmd_chart)


def _add_e2e(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("e2e", help="deploy one scenario on a real cluster and judge it")
    check.add_argument("--scenario", required=True, choices=catalogue.names())
    check.add_argument("--context", help="kube context (default: the current one)")
    check.add_argument("--no-deploy", action="store_true", help="use what is already running")
    check.add_argument("--keep", action="store_true", help="leave the scenario deployed")
    check.add_argument("--k8s", type=Path, default=None, help="the k8s/ folder (found from cwd)")
    add_scale_options(check)
    add_client_mode(check)
    check.set_defaults(func=cmd_e2e)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hellolb-lab",
        description="Reproduce the gRPC load-balancing scenarios on this machine and judge them.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one scenario")
    run.add_argument("scenario", choices=catalogue.names())
    add_lab_options(run)
    _add_chart(run)
    run.set_defaults(func=cmd_run)
    tour = sub.add_parser("tour", help="every scenario in a row, then a comparison table")
    add_lab_options(tour)
    tour.set_defaults(func=cmd_tour)
    _add_watch(sub)
    _add_chart_command(sub)
    b = sub.add_parser("bench", help="measure every scenario in one run")
    b.add_argument("--scenarios", nargs="*", choices=catalogue.lab_names())
    add_lab_options(b)
    b.set_defaults(func=cmd_bench)
    _add_e2e(sub)
    unevencmd.add_parser(sub)
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
