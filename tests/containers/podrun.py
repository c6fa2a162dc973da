"""Run a container of a rendered pod spec on a real engine (podman, or docker), as the kubelet
would run it, and stop it as the kubelet does.

``podman kube play`` would be the natural tool, but podman 4.3 refuses the manifests: it does
not know the downward-API field ``status.podIP`` ("fieldPath status.podIP is either not valid
or not supported"), and it publishes every ``containerPort`` on the host. So the pod spec is
translated here, field by field, following the kubelet (kubernetes/kubernetes):

- The pod first gets its own network namespace (``podman pod create``: the pause container,
  as the kubelet's sandbox), whose address then fills ``status.podIP``.
- ``runAsNonRoot`` is verified before the start as ``verifyRunAsNonRoot`` does it
  (pkg/kubelet/kuberuntime/security_context_others.go): the effective ``runAsUser`` must not
  be 0; without one, the image's USER must be numeric and not 0.
- The security context becomes engine flags: ``--user``, ``--cap-drop``/``--cap-add``,
  ``no-new-privileges`` for ``allowPrivilegeEscalation: false``, ``--read-only`` (without the
  engine's extra tmpfs mounts, which Kubernetes does not add) for ``readOnlyRootFilesystem``,
  the engine's default seccomp profile for ``RuntimeDefault``; limits become ``--cpus`` and
  ``--memory``.
- A gRPC probe is a ``grpc.health.v1.Health/Check`` from the node to the pod's address with
  the probe's ``service`` (empty by default) and ``timeoutSeconds`` (default 1), as
  pkg/probe/grpc/grpc.go does; SERVING is success, anything else failure.
- Stopping: the ``preStop`` sleep (pkg/kubelet/lifecycle/handlers.go), then SIGTERM with what
  is left of ``terminationGracePeriodSeconds`` (at least 2 s, the kubelet's minimum), then
  SIGKILL (killContainer in pkg/kubelet/kuberuntime/kuberuntime_container.go).

What is not applied is listed by :func:`not_applied`, computed from the spec itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = ROOT / "containers" / "containers.conf"
#: The kubelet never gives less than this after a preStop hook has used the grace period.
MIN_GRACE_AFTER_PRESTOP_S = 2.0
#: A downward-API reference to one of the pod's labels or annotations.
POD_METADATA_REF = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")
#: The node name the pods see (``spec.nodeName``).
NODE_NAME = "podman-node"

#: Pod spec fields, and what happens to each here.
POD_FIELDS_APPLIED = {
    "containers": "one engine container each",
    "securityContext": "runAsUser/runAsGroup as --user, runAsNonRoot verified, seccomp",
    "terminationGracePeriodSeconds": "the stop sequence's budget",
}
POD_FIELDS_NOT_APPLIED = {
    "serviceAccountName": "no API server: no service account",
    "automountServiceAccountToken": "no API server: no token is mounted either way",
    "topologySpreadConstraints": "one node: nothing to spread over",
    "volumes": "no volumes are mounted",
}
CONTAINER_FIELDS_APPLIED = {
    "name": "the container's name in the engine",
    "image": "replaced by the image built here, as Skaffold and Tilt replace it",
    "env": "values, and the downward-API fields the pod has",
    "securityContext": "capabilities, privilege escalation, read-only root, user",
    "resources": "limits as --cpus and --memory",
    "lifecycle": "preStop sleep before SIGTERM",
    "readinessProbe": "gRPC health check from the node",
    "livenessProbe": "gRPC health check from the node",
}
CONTAINER_FIELDS_NOT_APPLIED = {
    "imagePullPolicy": "the image is local; nothing is pulled",
    "ports": "informational: the pod's own network namespace exposes every port",
    "volumeMounts": "no volumes are mounted",
}
SECURITY_FIELDS = {
    "runAsNonRoot",
    "runAsUser",
    "runAsGroup",
    "seccompProfile",
    "allowPrivilegeEscalation",
    "capabilities",
    "readOnlyRootFilesystem",
}


class PodError(Exception):
    """The kubelet would refuse to start this container."""


def find_engine() -> str | None:
    """podman where installed, else docker where its daemon answers."""
    if shutil.which("podman"):
        return "podman"
    if shutil.which("docker"):
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
        if info.returncode == 0:
            return "docker"
    return None


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


@dataclass
class Engine:
    name: str

    def __call__(
        self, *args: str, input: bytes | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            [self.name, *args],
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
            env=engine_env(),
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name} {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stderr.decode(errors='replace')[-3000:]}"
            )
        return result

    def text(self, *args: str, timeout: float = 120) -> str:
        return self(*args, timeout=timeout).stdout.decode().strip()

    def inspect(self, kind: str, name: str) -> dict[str, Any]:
        found = json.loads(self.text(kind, "inspect", name))
        # podman 4.3 answers a pod inspect with one object, everything else with a list.
        if isinstance(found, list):
            (found,) = found
        return found

    def image_user(self, image: str) -> str:
        return self.inspect("image", image)["Config"].get("User", "")


def effective_security(pod_spec: Mapping[str, Any], container: Mapping[str, Any]) -> dict:
    """The container's security context over the pod's, as
    securitycontext.DetermineEffectiveSecurityContext merges them."""
    pod = pod_spec.get("securityContext") or {}
    own = container.get("securityContext") or {}
    merged = {k: pod[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")}
    merged = {k: v for k, v in merged.items() if v is not None} | dict(own)
    return merged


def verify_run_as_non_root(security: Mapping[str, Any], image_user: str) -> None:
    """verifyRunAsNonRoot: refuse what would run as root, or what cannot be verified."""
    if not security.get("runAsNonRoot"):
        return
    if "runAsUser" in security:
        if int(security["runAsUser"]) == 0:
            raise PodError("container's runAsUser breaks non-root policy")
        return
    uid = image_user.split(":")[0]
    if uid and not uid.isdigit():
        raise PodError(f"image has non-numeric user ({uid}), cannot verify user is non-root")
    if not uid or int(uid) == 0:
        raise PodError("container has runAsNonRoot and image will run as root")


def cpu_limit(value: str) -> str:
    return str(int(value[:-1]) / 1000) if value.endswith("m") else str(float(value))


def memory_limit(value: str) -> str:
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    for suffix, flag in units.items():
        if value.endswith(suffix):
            return value[: -len(suffix)] + flag
    return value


def security_flags(security: Mapping[str, Any]) -> list[str]:
    flags = []
    if "runAsUser" in security:
        group = security.get("runAsGroup")
        flags.append(f"--user={security['runAsUser']}" + (f":{group}" if group is not None else ""))
    capabilities = security.get("capabilities") or {}
    flags += [f"--cap-drop={c}" for c in capabilities.get("drop") or []]
    flags += [f"--cap-add={c}" for c in capabilities.get("add") or []]
    if security.get("allowPrivilegeEscalation") is False:
        flags.append("--security-opt=no-new-privileges")
    if security.get("readOnlyRootFilesystem"):
        flags += ["--read-only", "--read-only-tmpfs=false"]
    seccomp = (security.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        flags.append("--security-opt=seccomp=unconfined")
    elif seccomp != "RuntimeDefault":
        raise PodError(f"seccomp profile {seccomp} is not translated")
    unknown = set(security) - SECURITY_FIELDS
    if unknown:
        raise PodError(f"security fields not translated: {sorted(unknown)}")
    return flags


def resource_flags(resources: Mapping[str, Any]) -> list[str]:
    limits = resources.get("limits") or {}
    flags = []
    if "cpu" in limits:
        flags.append(f"--cpus={cpu_limit(str(limits['cpu']))}")
    if "memory" in limits:
        flags.append(f"--memory={memory_limit(str(limits['memory']))}")
    return flags


def not_applied(pod_spec: Mapping[str, Any]) -> dict[str, str]:
    """Every field of the spec that is not applied here, with why; unknown fields raise."""
    out = {}
    for key in pod_spec:
        if key in POD_FIELDS_NOT_APPLIED:
            out[key] = POD_FIELDS_NOT_APPLIED[key]
        elif key not in POD_FIELDS_APPLIED:
            raise PodError(f"pod field {key} is neither applied nor listed as not applied")
    for container in pod_spec["containers"]:
        for key in container:
            if key in CONTAINER_FIELDS_NOT_APPLIED:
                out[f"containers[{container['name']}].{key}"] = CONTAINER_FIELDS_NOT_APPLIED[key]
            elif key not in CONTAINER_FIELDS_APPLIED:
                raise PodError(f"container field {key} is neither applied nor listed")
        requests = (container.get("resources") or {}).get("requests")
        if requests:
            out[f"containers[{container['name']}].resources.requests"] = "scheduling only: one node"
    return out


@dataclass(frozen=True)
class GrpcProbe:
    port: int
    service: str = ""
    timeout: float = 1.0
    period: float = 10.0
    failure_threshold: int = 3
    initial_delay: float = 0.0

    @classmethod
    def of(cls, probe: Mapping[str, Any] | None) -> GrpcProbe | None:
        if not probe:
            return None
        if "grpc" not in probe:
            raise PodError(f"only gRPC probes are translated, not {sorted(probe)}")
        return cls(
            port=int(probe["grpc"]["port"]),
            service=probe["grpc"].get("service") or "",
            timeout=float(probe.get("timeoutSeconds", 1)),
            period=float(probe.get("periodSeconds", 10)),
            failure_threshold=int(probe.get("failureThreshold", 3)),
            initial_delay=float(probe.get("initialDelaySeconds", 0)),
        )

    def check(self, ip: str) -> str:
        """One probe: the health status name, or the gRPC error code's name."""
        with grpc.insecure_channel(f"{ip}:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                answer = stub.Check(
                    health_pb2.HealthCheckRequest(service=self.service),
                    timeout=self.timeout,
                    metadata=(("user-agent", "kube-probe"),),
                )
            except grpc.RpcError as error:
                return error.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def downward_value(path: str, pod: Pod) -> str:
    match = POD_METADATA_REF.fullmatch(path)
    if match is not None:
        found = (pod.metadata.get(match[1]) or {}).get(match[2])
        if found is None:
            raise PodError(f"{path}: the pod sets no such {match[1][:-1]}")
        return str(found)
    values = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "status.podIP": pod.ip,
        "spec.nodeName": NODE_NAME,
    }
    if path not in values:
        raise PodError(f"downward-API field {path} is not translated")
    return values[path]


@dataclass
class Pod:
    """One pod of a Deployment: its network namespace (the engine's pod, with its pause
    container) and the template's metadata and spec."""

    engine: Engine
    name: str
    namespace: str
    template: Mapping[str, Any]
    hosts: Mapping[str, str] = field(default_factory=dict)
    ip: str = ""

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.template.get("metadata") or {}

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.template["spec"]

    def container(self, name: str, image: str, **kwargs: Any) -> Container:
        (spec,) = [c for c in self.spec["containers"] if c["name"] == name]
        return Container(self, spec, image, **kwargs)

    def create(self) -> None:
        # No name server: every name a pod needs here is a Service, given as a host entry.
        adds = [f"--add-host={host}:{ip}" for host, ip in self.hosts.items()]
        self.engine("pod", "create", f"--name={self.name}", "--dns=127.0.0.1", *adds)
        self.engine("pod", "start", self.name)
        infra = self.engine.inspect("pod", self.name)["InfraContainerID"]
        networks = self.engine.inspect("container", infra)["NetworkSettings"]["Networks"]
        self.ip = next(iter(networks.values()))["IPAddress"]

    def remove(self) -> None:
        self.engine("pod", "rm", "--force", "--time=0", self.name, check=False, timeout=300)


@dataclass
class Container:
    """A container of a pod spec, started from the spec's settings."""

    pod: Pod
    spec: Mapping[str, Any]
    image: str
    extra_env: Mapping[str, str] = field(default_factory=dict)
    security_override: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    @property
    def engine(self) -> Engine:
        return self.pod.engine

    def security(self) -> dict[str, Any]:
        return effective_security(self.pod.spec, self.spec) | dict(self.security_override)

    def env(self) -> dict[str, str]:
        env = {}
        for item in self.spec.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            else:
                path = item["valueFrom"]["fieldRef"]["fieldPath"]
                env[item["name"]] = downward_value(path, self.pod)
        return env | dict(self.extra_env)

    def run_args(self) -> list[str]:
        security = self.security()
        verify_run_as_non_root(security, self.engine.image_user(self.image))
        self.name = f"{self.pod.name}-{self.spec['name']}"
        env = [f"--env={k}={v}" for k, v in self.env().items()]
        return [
            "run",
            f"--name={self.name}",
            f"--pod={self.pod.name}",
            *security_flags(security),
            *resource_flags(self.spec.get("resources") or {}),
            *env,
            self.image,
        ]

    def start(self) -> None:
        """Start it detached: its output is read from the engine's log (an attached pipe
        nobody reads would fill up and block the container's writes)."""
        args = self.run_args()
        self.engine(*args[:1], "--detach", *args[1:])

    def running(self) -> bool:
        return bool(self.state()["Running"])

    def wait_stopped(self, timeout: float) -> bool:
        """Whether it stopped within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return True
            time.sleep(0.05)
        return False

    def state(self) -> dict[str, Any]:
        return self.engine.inspect("container", self.name)["State"]

    def readiness(self) -> GrpcProbe | None:
        return GrpcProbe.of(self.spec.get("readinessProbe"))

    def liveness(self) -> GrpcProbe | None:
        return GrpcProbe.of(self.spec.get("livenessProbe"))

    def wait_ready(self, timeout: float = 60) -> float:
        """Probe as the readiness probe does until it succeeds; the seconds it took."""
        probe = self.readiness()
        assert probe is not None, f"{self.spec['name']} has no readiness probe"
        started = time.monotonic()
        status = ""
        while time.monotonic() - started < timeout:
            assert self.running(), self.output()
            status = probe.check(self.pod.ip)
            if status == "SERVING":
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"not ready after {timeout} s (last probe: {status})")

    def grace(self) -> float:
        return float(self.pod.spec.get("terminationGracePeriodSeconds", 30))

    def pre_stop_sleep(self) -> float:
        hook = (self.spec.get("lifecycle") or {}).get("preStop") or {}
        if hook and "sleep" not in hook:
            raise PodError(f"only the preStop sleep is translated, not {sorted(hook)}")
        return float((hook.get("sleep") or {}).get("seconds", 0))

    def stop(self, sleep: bool = True) -> StopResult:
        """The kubelet's stop: preStop, SIGTERM, at most the rest of the grace, SIGKILL."""
        grace = self.grace()
        pre_stop = self.pre_stop_sleep() if sleep else 0.0
        if pre_stop:
            time.sleep(pre_stop)
        remaining = max(grace - pre_stop, MIN_GRACE_AFTER_PRESTOP_S)
        started = time.monotonic()
        self.engine("kill", "--signal=TERM", self.name)
        killed = not self.wait_stopped(remaining)
        if killed:
            self.engine("kill", "--signal=KILL", self.name, check=False)
            self.wait_stopped(30)
        return StopResult(
            seconds=time.monotonic() - started,
            exit_code=int(self.state()["ExitCode"]),
            killed=killed,
            budget=remaining,
        )

    def output(self) -> str:
        return self.engine("logs", self.name, check=False).stdout.decode(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.output().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out

    def exec(self, *argv: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """``kubectl exec``: the command, as the container's own user."""
        return self.engine("exec", "-i", self.name, *argv, input=input)


@dataclass(frozen=True)
class StopResult:
    seconds: float
    exit_code: int
    killed: bool
    budget: float


def pod_name(deployment: str) -> str:
    return f"hellolb-test-{deployment}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def pod(
    engine: Engine, deployment: Mapping[str, Any], hosts: Mapping[str, str] | None = None
) -> Iterator[Pod]:
    """A pod of the rendered ``deployment``, removed (with its containers) afterwards."""
    name = pod_name(deployment["metadata"]["name"])
    namespace = deployment["metadata"].get("namespace", "default")
    the_pod = Pod(engine, name, namespace, deployment["spec"]["template"], hosts or {})
    try:
        the_pod.create()
        yield the_pod
    finally:
        the_pod.remove()
