"""A scenario's parameters, read from its rendered Kustomize overlay.

The lab never keeps its own copy of replicas, environment or Envoy configuration: it renders
``k8s/overlays/<scenario>`` with the real ``kubectl kustomize`` and reads them from the result,
so the lab and the cluster run the same settings.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from hellolb_lab.deployment import DEFAULT_GRACE_S, DEFAULT_SHARE, PodStop, RollingUpdate
from hellolb_lab.errors import LabError
from hellolb_lab.procs import find_binary

#: A downward-API reference to one of the pod's own labels or annotations.
POD_METADATA_REF = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


@dataclass(frozen=True)
class Overlay:
    """What the lab takes from one rendered overlay."""

    scenario: str
    namespace: str
    server_replicas: int
    server_env: dict[str, str]
    client_replicas: int
    client_env: dict[str, str]
    proxy_replicas: int | None = None
    envoy_config: dict[str, Any] | None = None
    envoy_args: tuple[str, ...] = ()
    sidecar: bool = False
    services: dict[str, bool] = field(default_factory=dict)
    server_rollout: RollingUpdate = field(default_factory=RollingUpdate)
    server_stop: PodStop = field(default_factory=PodStop)
    #: Files the client's own container reads from ConfigMaps, by the path it sees them at
    #: (the xds scenario's bootstrap).
    client_files: dict[str, str] = field(default_factory=dict)
    #: Every Deployment's name.
    deployments: tuple[str, ...] = ()

    @property
    def uses_envoy(self) -> bool:
        return self.envoy_config is not None


def find_k8s_dir(start: Path | None = None) -> Path:
    """The ``k8s`` folder of this checkout: searched upward from ``start`` (or cwd), then from
    this file."""
    candidates = [start or Path.cwd(), Path(__file__).resolve()]
    for origin in candidates:
        for folder in [origin, *origin.parents]:
            if (folder / "k8s" / "overlays").is_dir():
                return folder / "k8s"
    raise LabError("k8s/overlays not found: run the lab from the repository or pass --k8s DIR")


def render(scenario: str, k8s_dir: Path, timeout: float = 60.0) -> str:
    """The overlay rendered by ``kubectl kustomize``."""
    path = k8s_dir / "overlays" / scenario
    if not path.is_dir():
        known = sorted(p.name for p in (k8s_dir / "overlays").iterdir() if p.is_dir())
        raise LabError(f"no overlay {path}; known: {', '.join(known)}")
    kubectl = find_binary("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    if result.returncode != 0:
        raise LabError(f"kubectl kustomize {path} failed: {result.stderr.strip()}")
    return result.stdout


def _env(container: Mapping[str, Any], pod_metadata: Mapping[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet would set it, where the overlay decides it:
    literal values, and downward-API references to the pod's labels and annotations. The pod's
    name, IP and node (also downward API) are left to the lab, which has its own."""
    env = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        path = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
        match = POD_METADATA_REF.fullmatch(path)
        if match is not None:
            value = (pod_metadata.get(match[1]) or {}).get(match[2])
            if value is None:
                raise LabError(f"{item['name']} refers to {path}, which the pod does not set")
            env[item["name"]] = str(value)
    return env


def _pod_metadata(deployment: Mapping[str, Any]) -> Mapping[str, Any]:
    return deployment["spec"]["template"].get("metadata") or {}


def _containers(deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    # A native sidecar is an init container that keeps running (restartPolicy: Always).
    init = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return [*init, *(spec.get("containers") or [])]


def _is_envoy(container: Mapping[str, Any]) -> bool:
    return "envoy" in str(container.get("image", "")) or container.get("name") == "envoy"


def _rolling_update(deployment: Mapping[str, Any]) -> RollingUpdate:
    """The Deployment's rollout settings; the API's defaults where it states none."""
    spec = deployment["spec"]
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise LabError(f"the lab rolls out {deployment['metadata']['name']} only by RollingUpdate")
    rolling = strategy.get("rollingUpdate") or {}
    return RollingUpdate(
        max_surge=rolling.get("maxSurge", DEFAULT_SHARE),
        max_unavailable=rolling.get("maxUnavailable", DEFAULT_SHARE),
        min_ready_s=float(spec.get("minReadySeconds", 0)),
    )


def _pod_stop(deployment: Mapping[str, Any], container: Mapping[str, Any]) -> PodStop:
    """The pod's grace period and the container's preStop pause (the kubelet's own ``sleep``
    action: an ``exec`` hook runs a command the lab cannot run, so it is refused)."""
    spec = deployment["spec"]["template"]["spec"]
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    if set(pre_stop) - {"sleep"}:
        raise LabError(f"the lab can only pause for a preStop sleep, not {sorted(pre_stop)}")
    return PodStop(
        prestop_s=float((pre_stop.get("sleep") or {}).get("seconds", 0)),
        grace_s=float(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)),
    )


def _mounted_files(
    deployment: Mapping[str, Any],
    container: Mapping[str, Any],
    config_maps: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """The ConfigMap files ``container`` sees, by path: every key of a mounted ConfigMap (or
    the keys its ``items`` list, under their paths), or the one key a ``subPath`` names."""
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes") or []}
    files = {}
    for mount in container.get("volumeMounts") or []:
        source = (volumes.get(mount["name"]) or {}).get("configMap")
        if source is None or source.get("name") not in config_maps:
            continue
        data = config_maps[source["name"]].get("data") or {}
        paths = {item["path"]: item["key"] for item in source.get("items") or []}
        paths = paths or {key: key for key in data}
        base = PurePosixPath(mount["mountPath"])
        sub = mount.get("subPath")
        for path, key in paths.items():
            if key not in data:
                continue
            if sub is None:
                files[str(base / path)] = str(data[key])
            elif sub == path:
                files[str(base)] = str(data[key])
    return files


def parse(text: str, scenario: str) -> Overlay:
    """Extract the lab's parameters from rendered YAML."""
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    deployments = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}
    config_maps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    services = {
        d["metadata"]["name"]: d["spec"].get("clusterIP") == "None"
        for d in docs
        if d.get("kind") == "Service"
    }
    for name in ("server", "client"):
        if name not in deployments:
            raise LabError(f"overlay {scenario} has no Deployment {name!r}")
    server, client = deployments["server"], deployments["client"]
    server_main = next(c for c in _containers(server) if not _is_envoy(c))
    client_containers = _containers(client)
    client_main = next(c for c in client_containers if not _is_envoy(c))
    sidecar = next((c for c in client_containers if _is_envoy(c)), None)
    proxy = deployments.get("proxy")
    envoy_container = sidecar
    if proxy is not None:
        envoy_container = next((c for c in _containers(proxy) if _is_envoy(c)), None)
    envoy_config = None
    if envoy_container is not None:
        if "envoy" not in config_maps:
            raise LabError(f"overlay {scenario} runs Envoy but has no ConfigMap 'envoy'")
        envoy_config = yaml.safe_load(config_maps["envoy"]["data"]["envoy.yaml"])
    namespace = server["metadata"].get("namespace", scenario)
    return Overlay(
        scenario=scenario,
        namespace=namespace,
        server_replicas=int(server["spec"].get("replicas", 1)),
        server_env=_env(server_main, _pod_metadata(server)),
        client_replicas=int(client["spec"].get("replicas", 1)),
        client_env=_env(client_main, _pod_metadata(client)),
        proxy_replicas=int(proxy["spec"].get("replicas", 1)) if proxy is not None else None,
        envoy_config=envoy_config,
        envoy_args=tuple(str(a) for a in (envoy_container or {}).get("args") or ()),
        sidecar=sidecar is not None,
        services=services,
        server_rollout=_rolling_update(server),
        server_stop=_pod_stop(server, server_main),
        client_files=_mounted_files(client, client_main, config_maps),
        deployments=tuple(deployments),
    )


def load(scenario: str, k8s_dir: Path | None = None) -> Overlay:
    """Render and parse ``k8s/overlays/<scenario>``."""
    k8s = k8s_dir or find_k8s_dir()
    return parse(render(scenario, k8s), scenario)
