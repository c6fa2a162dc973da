"""End-to-end check of one scenario on a real Kind cluster.

    python k8s/e2e.py --scenario maxage        (or: make e2e SCENARIO=maxage)

Deploys the scenario with ``skaffold run -p <scenario>``, lets the client run, scales the
servers 3 -> 5 and keeps watching. In the proxy scenario it then scales the proxy 1 -> 3,
checks that the new proxy pods stay idle, restarts the client and checks that they get traffic.
The client's JSON log lines are judged by the shared verdict module (``hellolb_lab.verdict``),
the same code the local lab uses; the exit code is 0 when every expected behaviour was seen.

The functions that read logs and decide are pure and tested offline (``tests/test_e2e.py``);
only :class:`Cluster` talks to the cluster, through one injectable command runner.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hellolb_lab import overlay, reader, verdict

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("clusterip", "headless", "maxage", "proxy", "sidecar", "linkerd")

#: Seconds of client traffic before the scale-up, and after it.
WARMUP_S = 20.0
OBSERVE_S = {"maxage": 60.0, "linkerd": 40.0}
DEFAULT_OBSERVE_S = 40.0
#: Seconds the new proxy pods are watched before, and after, the client restart.
PROXY_WINDOW_S = 20.0
#: Added to every bound on a cluster: log timestamps, endpoint propagation, pod readiness.
CLUSTER_MARGIN_S = 5.0
#: Linkerd's destination service pushes endpoint changes to the proxies within seconds.
LINKERD_REACH_S = 10.0

Runner = Callable[[Sequence[str]], str]


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log events among ``text``'s lines; anything else (Envoy's own log, blanks)
    is skipped, as the cluster log reader does."""
    return [event for line in text.splitlines() if (event := reader.parse_line(line))]


def count_proxy_requests(log_text: str) -> int:
    """Requests an Envoy served, from its ``proxy.request`` access-log lines."""
    return sum(1 for e in json_lines(log_text) if e.get("event") == "proxy.request")


def reach_bound_for(scenario: str, ov: overlay.Overlay) -> float | None:
    """Seconds within which new servers must answer, from the overlay's own settings."""
    if scenario == "linkerd":
        return LINKERD_REACH_S + CLUSTER_MARGIN_S
    return overlay.reach_bound(
        scenario,
        server_env=ov.server_env,
        client_env=ov.client_env,
        envoy_config=ov.envoy_config,
        margin_s=CLUSTER_MARGIN_S,
    )


def evaluate(
    scenario: str,
    client_log: str,
    *,
    scale_at: float,
    servers_before: Sequence[str],
    servers_after: Sequence[str],
    end: float,
    reach_bound_s: float | None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[verdict.Verdict, list[verdict.Check]]:
    """Judge a scenario from the client's log text (all its JSON lines) around a scale-up."""
    events = json_lines(client_log)
    result = verdict.judge(
        scenario,
        verdict.answers_from_events(events),
        scale_at=scale_at,
        servers_before=servers_before,
        servers_after=servers_after,
        end=end,
        failed_rpcs=verdict.failed_rpcs(events),
        extra=extra,
    )
    return result, verdict.expected(scenario, result, reach_bound_s=reach_bound_s)


def rfc3339(t: float) -> str:
    """A timestamp for ``kubectl logs --since-time``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_command(argv: Sequence[str]) -> str:
    """Run a command, echo it, return its stdout; stop on failure (bounded to 10 minutes)."""
    print("+ " + " ".join(argv), file=sys.stderr, flush=True)
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=600, check=False, cwd=ROOT
    )
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


@dataclass
class Cluster:
    """The kubectl and skaffold calls of the check, for one namespace."""

    namespace: str
    run: Runner = run_command
    context: str | None = None
    calls: list[list[str]] = field(default_factory=list)

    def _kubectl(self, *args: str) -> str:
        ctx = ["--context", self.context] if self.context else []
        argv = ["kubectl", *ctx, "-n", self.namespace, *args]
        self.calls.append(argv)
        return self.run(argv)

    def deploy(self, scenario: str) -> None:
        ctx = ["--kube-context", self.context] if self.context else []
        argv = ["skaffold", "run", "-p", scenario, *ctx, "--status-check=true"]
        self.calls.append(argv)
        self.run(argv)

    def delete(self, scenario: str) -> None:
        ctx = ["--kube-context", self.context] if self.context else []
        argv = ["skaffold", "delete", "-p", scenario, *ctx]
        self.calls.append(argv)
        self.run(argv)

    def rollout(self, deployment: str, timeout_s: int = 180) -> None:
        self._kubectl("rollout", "status", f"deployment/{deployment}", f"--timeout={timeout_s}s")

    def scale(self, deployment: str, replicas: int) -> None:
        self._kubectl("scale", f"deployment/{deployment}", f"--replicas={replicas}")
        self.rollout(deployment)

    def pods(self, app: str) -> list[str]:
        out = self._kubectl(
            "get",
            "pods",
            "-l",
            f"app={app}",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        )
        return sorted(out.split())

    def restart_client(self) -> None:
        self._kubectl("delete", "pod", "-l", "app=client", "--wait=true")
        self.rollout("client")

    def client_logs(self) -> str:
        return self._kubectl("logs", "-l", "app=client", "--tail=-1", "--max-log-requests=10")

    def pod_logs_since(self, pod: str, since: float) -> str:
        return self._kubectl("logs", pod, f"--since-time={rfc3339(since)}")


def proxy_phase(
    cluster: Cluster, sleep: Callable[[float], None], clock: Callable[[], float]
) -> dict[str, dict[str, int]]:
    """Scale the proxy 1 -> 3, then restart the client: requests per new proxy pod in each part."""
    old = set(cluster.pods("proxy"))
    cluster.scale("proxy", 3)
    new = sorted(set(cluster.pods("proxy")) - old)
    start = clock()
    sleep(PROXY_WINDOW_S)
    before = {p: count_proxy_requests(cluster.pod_logs_since(p, start)) for p in new}
    cluster.restart_client()
    restarted = clock()
    sleep(PROXY_WINDOW_S)
    after = {p: count_proxy_requests(cluster.pod_logs_since(p, restarted)) for p in new}
    return {"before_restart": before, "after_restart": after}


def run_scenario(
    scenario: str,
    cluster: Cluster,
    ov: overlay.Overlay,
    *,
    deploy: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> tuple[verdict.Verdict, list[verdict.Check]]:
    """Deploy, warm up, scale the servers 3 -> 5, watch, judge (and the proxy steps)."""
    if deploy:
        cluster.deploy(scenario)
    for name in ("server", "proxy") if scenario == "proxy" else ("server",):
        cluster.rollout(name)
    # The client resolves its target once, when it starts. Deployed beside the servers it
    # may have started while only some were ready, and would balance over those alone:
    # start it afresh now that every server (and proxy) is ready.
    cluster.restart_client()
    sleep(WARMUP_S)
    before = cluster.pods("server")
    cluster.scale("server", 5)
    # Counted from the moment all five are ready: before that a new pod is not in DNS.
    scale_at = clock()
    after = cluster.pods("server")
    sleep(OBSERVE_S.get(scenario, DEFAULT_OBSERVE_S))
    end = clock()
    client_log = cluster.client_logs()
    extra = proxy_phase(cluster, sleep, clock) if scenario == "proxy" else None
    return evaluate(
        scenario,
        client_log,
        scale_at=scale_at,
        servers_before=before,
        servers_after=after,
        end=end,
        reach_bound_s=reach_bound_for(scenario, ov),
        extra={"proxy_requests": extra} if extra is not None else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--context", help="kube context (default: the current one)")
    parser.add_argument("--no-deploy", action="store_true", help="use what is already running")
    parser.add_argument("--keep", action="store_true", help="leave the scenario deployed")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("kubectl", "skaffold") if shutil.which(tool) is None]
    if missing:
        print(f"e2e: {', '.join(missing)} not found on PATH (see README)", file=sys.stderr)
        return 2
    cluster = Cluster(namespace=args.scenario, context=args.context)
    try:
        result, checks = run_scenario(
            args.scenario,
            cluster,
            overlay.load(args.scenario, ROOT / "k8s"),
            deploy=not args.no_deploy,
        )
    finally:
        if not args.keep and not args.no_deploy:
            cluster.delete(args.scenario)
    print(verdict.format_verdict(result, checks))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
