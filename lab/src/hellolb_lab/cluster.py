"""The kubectl and skaffold commands of the cluster check, for one scenario's namespace.

Everything the check asks of a cluster goes through :class:`Cluster`, and every command through
one injectable runner, so the check's steps can be followed offline against a stand-in cluster.
Every ``kubectl logs`` names its container: in the linkerd scenario a pod also holds Linkerd's
proxy, whose log would come first otherwise.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hellolb_lab.errors import LabError

#: The containers whose logs the check reads, as the manifests name them (k8s/base,
#: k8s/components/proxy).
CLIENT_CONTAINER = "client"
PROXY_CONTAINER = "envoy"
#: The canary scenario's weight script, from the repository's root (the runner's folder).
CANARY_WEIGHT_SCRIPT = "k8s/canary/canary-weight.sh"
#: The xds scenario's control-plane Deployment (k8s/components/xds).
CONTROL_PLANE = "xds"
#: The canary scenario's canary Deployment (k8s/components/canary).
CANARY_SERVERS = "server-canary"
#: Seconds a Deployment may take to roll out before the check gives up.
ROLLOUT_TIMEOUT_S = 180
#: Seconds one command may take (a first ``skaffold run`` builds two images).
COMMAND_TIMEOUT_S = 600

Runner = Callable[[Sequence[str]], str]


def rfc3339(t: float) -> str:
    """A timestamp for ``kubectl logs --since-time``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def command_runner(cwd: Path) -> Runner:
    """Run a command in ``cwd``, echo it on stderr, return its stdout; :class:`LabError` with the
    command's own words when it fails."""

    def run(argv: Sequence[str]) -> str:
        print("+ " + " ".join(argv), file=sys.stderr, flush=True)
        try:
            result = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
                cwd=cwd,
            )
        except subprocess.TimeoutExpired:
            raise LabError(f"{argv[0]} took longer than {COMMAND_TIMEOUT_S}s") from None
        if result.returncode != 0:
            raise LabError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    return run


@dataclass
class Cluster:
    """The commands of the check, in ``namespace``, recorded in ``calls``."""

    namespace: str
    run: Runner
    context: str | None = None
    calls: list[list[str]] = field(default_factory=list)

    def _call(self, argv: list[str]) -> str:
        self.calls.append(argv)
        return self.run(argv)

    def _kubectl(self, *args: str) -> str:
        ctx = ["--context", self.context] if self.context else []
        return self._call(["kubectl", *ctx, "-n", self.namespace, *args])

    def _skaffold(self, verb: str, profile: str, *flags: str) -> None:
        ctx = ["--kube-context", self.context] if self.context else []
        self._call(["skaffold", verb, "-p", profile, *ctx, *flags])

    def deploy(self, scenario: str) -> None:
        self._skaffold("run", scenario, "--status-check=true")

    def delete(self, scenario: str) -> None:
        self._skaffold("delete", scenario)

    def rollout(self, deployment: str) -> None:
        timeout = f"--timeout={ROLLOUT_TIMEOUT_S}s"
        self._kubectl("rollout", "status", f"deployment/{deployment}", timeout)

    def rollout_restart(self, deployment: str) -> None:
        """``kubectl rollout restart``, then ``kubectl rollout status`` until it is complete."""
        self._kubectl("rollout", "restart", f"deployment/{deployment}")
        self.rollout(deployment)

    def wait_deleted(self, pods: Sequence[str]) -> None:
        """Until every one of ``pods`` is gone (a pod already gone counts: kubectl 1.21 on)."""
        if pods:
            timeout = f"--timeout={ROLLOUT_TIMEOUT_S}s"
            self._kubectl("wait", "--for=delete", *(f"pod/{p}" for p in pods), timeout)

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

    def wait_pods_gone(self, app: str) -> None:
        """Wait until no pod of ``app`` is left: after a scale to zero, one may still be
        terminating. ``delete --wait`` waits for it, and returns at once when none is left."""
        self._kubectl("delete", "pod", "-l", f"app={app}", "--wait=true")

    def restart_client(self) -> None:
        self._kubectl("delete", "pod", "-l", "app=client", "--wait=true")
        self.rollout("client")

    def set_client_env(self, name: str, value: str) -> None:
        """Set one variable of the client container (``kubectl set env``: new client pods, and
        the Deployment keeps it until the scenario is deployed again), then wait for them."""
        self._kubectl(
            "set", "env", "deployment/client", f"--containers={CLIENT_CONTAINER}", f"{name}={value}"
        )
        self.rollout("client")

    def client_logs(self) -> str:
        return self._kubectl(
            "logs", "-l", "app=client", "-c", CLIENT_CONTAINER, "--tail=-1", "--max-log-requests=10"
        )

    def canary_weight(self, percent: int) -> None:
        """Give the canary ``percent`` of the calls, with the script a user runs."""
        ctx = ["--context", self.context] if self.context else []
        script = ["bash", CANARY_WEIGHT_SCRIPT, *ctx, "--namespace", self.namespace]
        self._call([*script, str(percent)])

    def proxy_logs_since(self, pod: str, since: float) -> str:
        return self._kubectl("logs", pod, "-c", PROXY_CONTAINER, f"--since-time={rfc3339(since)}")
