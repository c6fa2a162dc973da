"""Facts the project takes from other projects' documentation, each once, with its source.

The tests compare the docs, the scripts and the manifests with these; when upstream moves, this
file changes first and the tests name every place that must follow. Loaded by the tests with
``importlib`` (the test modules are imported with ``--import-mode=importlib``).
"""

from __future__ import annotations

#: Linkerd's supported Kubernetes versions per stable line, oldest and newest minor
#: (linkerd.io/2/reference/k8s-versions; linkerd/website
#: ``linkerd.io/content/2-edge/reference/k8s-versions.md``).
LINKERD_KUBERNETES: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "2.19": ((1, 29), (1, 35)),
    "2.20": ((1, 31), (1, 35)),
}

#: Linkerd's Gateway API compatibility table per stable line, oldest and newest release
#: (linkerd.io/2/features/gateway-api; linkerd/website
#: ``linkerd.io/content/2-edge/features/gateway-api.md``). Linkerd 2.17 and older bring
#: their own Gateway API CRDs.
LINKERD_GATEWAY_API: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "2.18": ((1, 1, 1), (1, 2, 1)),
    "2.19": ((1, 1, 1), (1, 4, 0)),
    "2.20": ((1, 2, 1), (1, 5, 1)),
}

#: Kubernetes' version skew policy (kubernetes.io/releases/version-skew-policy): kubectl is
#: supported within one minor version, older or newer, of the API server.
KUBECTL_SKEW = 1


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)
