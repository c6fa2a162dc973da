"""A stand-in for Linkerd's proxy injector: what its mutating webhook does to a pod template
annotated ``linkerd.io/inject: enabled``, so that tests can look at the pods a meshed scenario
really runs. Linkerd itself cannot run here.

It follows the injector's patch template, ``charts/patch/templates/patch.json`` in linkerd2, and
the container partials it includes (``charts/partials/templates/_proxy.tpl``,
``_proxy-init.tpl``, ``_metadata.tpl``), for the parts that decide where containers go:

- the ``linkerd-init`` init container (iptables), appended to the init containers, or first of
  them in native-sidecar mode;
- the ``linkerd-proxy`` container, inserted at ``containers/0`` (the default ``proxy.await``
  mode, with a postStart hook that waits for the proxy), or, in native-sidecar mode, as the
  init container right after ``linkerd-init``, with ``restartPolicy: Always``;
- its volumes, and the annotations and labels it adds to the pod.

Which mode a pod gets depends on the injector's release: the annotation key it reads and its
default (alpha key since 2.15; beta key in 2.19; GA key, and native sidecars by default, in
2.20, linkerd2 pull request 15267). Test modules load this file by path.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

INJECT = "linkerd.io/inject"
PROXY = "linkerd-proxy"
INIT = "linkerd-init"


@dataclass(frozen=True)
class Injector:
    """One Linkerd release's injector, as far as container placement goes."""

    release: str
    native_sidecar_key: str
    native_by_default: bool
    proxy_await: bool = True

    def native(self, annotations: dict[str, str]) -> bool:
        value = annotations.get(self.native_sidecar_key)
        if value is None:
            return self.native_by_default
        return value.lower() in ("true", "1")


RELEASES = {
    "2.18": Injector("2.18", "config.alpha.linkerd.io/proxy-enable-native-sidecar", False),
    "2.19": Injector("2.19", "config.beta.linkerd.io/proxy-enable-native-sidecar", False),
    "2.20": Injector("2.20", "config.linkerd.io/proxy-enable-native-sidecar", True),
}


def proxy_container(version: str, *, native: bool, await_proxy: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": PROXY,
        "image": f"cr.l5d.io/linkerd/proxy:{version}",
        "ports": [
            {"containerPort": 4143, "name": "linkerd-proxy"},
            {"containerPort": 4191, "name": "linkerd-admin"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 4191}},
        "livenessProbe": {"httpGet": {"path": "/live", "port": 4191}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 2102,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {
                "mountPath": "/var/run/linkerd/identity/end-entity",
                "name": "linkerd-identity-end-entity",
            },
            {"mountPath": "/var/run/secrets/tokens", "name": "linkerd-identity-token"},
        ],
    }
    if native:
        container["restartPolicy"] = "Always"
        if await_proxy:
            container["startupProbe"] = {"httpGet": {"path": "/ready", "port": 4191}}
    elif await_proxy:
        container["lifecycle"] = {
            "postStart": {
                "exec": {
                    "command": [
                        "/usr/lib/linkerd/linkerd-await",
                        "--timeout=2m",
                        "--port=4191",
                    ]
                }
            }
        }
    return container


def init_container(version: str) -> dict[str, Any]:
    return {
        "name": INIT,
        "image": f"cr.l5d.io/linkerd/proxy-init:{version}",
        "args": ["--incoming-proxy-port", "4143", "--outgoing-proxy-port", "4140"],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]},
            "privileged": False,
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"mountPath": "/run", "name": "linkerd-proxy-init-xtables-lock"}],
    }


def inject(
    deployment: dict[str, Any],
    injector: Injector,
    *,
    namespace_annotations: dict[str, str] | None = None,
    version: str = "edge",
) -> dict[str, Any]:
    """The pod template of ``deployment`` as the injector admits it (a new dict)."""
    template = copy.deepcopy(deployment["spec"]["template"])
    metadata = template.setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {})
    # Pod annotations win over the namespace's, which the injector copies onto the pod.
    effective = {**(namespace_annotations or {}), **annotations}
    if effective.get(INJECT) != "enabled":
        return template
    spec = template["spec"]
    native = injector.native(effective)
    annotations.update(
        {
            "linkerd.io/created-by": f"linkerd/proxy-injector {version}",
            "linkerd.io/proxy-version": version,
            "linkerd.io/trust-root-sha256": "0" * 64,
            "cluster-autoscaler.kubernetes.io/safe-to-evict": "true",
        }
    )
    namespace = deployment["metadata"].get("namespace", "default")
    metadata.setdefault("labels", {}).update(
        {
            "linkerd.io/control-plane-ns": "linkerd",
            "linkerd.io/proxy-deployment": deployment["metadata"]["name"],
            "linkerd.io/workload-ns": namespace,
        }
    )
    spec.setdefault("volumes", [])
    spec.setdefault("initContainers", [])
    spec["volumes"].append({"name": "linkerd-proxy-init-xtables-lock", "emptyDir": {}})
    # patch.json: with native sidecars the init container goes first and the proxy right after
    # it ($initIndex 0, then 1); otherwise both are appended ("-").
    if native:
        spec["initContainers"].insert(0, init_container(version))
    else:
        spec["initContainers"].append(init_container(version))
    end_entity = {"name": "linkerd-identity-end-entity", "emptyDir": {"medium": "Memory"}}
    spec["volumes"].append(end_entity)
    spec["volumes"].append(
        {
            "name": "linkerd-identity-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "identity.l5d.io",
                            "expirationSeconds": 86400,
                            "path": "linkerd-identity-token",
                        }
                    }
                ]
            },
        }
    )
    proxy = proxy_container(version, native=native, await_proxy=injector.proxy_await)
    if native:
        spec["initContainers"].insert(1, proxy)
    elif injector.proxy_await:
        spec["containers"].insert(0, proxy)
    else:
        spec["containers"].append(proxy)
    return template
