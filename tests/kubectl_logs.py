"""Which container a ``kubectl logs`` command line reads, decided as kubectl decides it, for
pods given as pod templates (for example as Linkerd's injector leaves them). Feed it any
command: the documentation's, or the cluster check's own ``kubectl`` calls.

kubectl's rule (``logsForObjectWithClient`` in kubectl's ``polymorphichelpers/logsforobject.go``),
for each pod the command selects: ``-c``/``--container`` if given; else the container named by
the pod's ``kubectl.kubernetes.io/default-container`` annotation, when the pod has one of that
name (init containers count, so a native sidecar can be named); else the first entry of
``spec.containers``. ``--all-containers`` reads every init, regular and ephemeral container.
Test modules load this file by path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
#: `kubectl logs` options that take a value, long and short names.
VALUE_OPTIONS = {
    "--container": "container",
    "-c": "container",
    "--selector": "selector",
    "-l": "selector",
    "--namespace": "namespace",
    "-n": "namespace",
    "--tail": None,
    "--since": None,
    "--since-time": None,
    "--max-log-requests": None,
    "--limit-bytes": None,
    "--pod-running-timeout": None,
    "--context": None,
    "--kubeconfig": None,
    "--request-timeout": None,
}
FLAG_OPTIONS = {
    "--all-containers": "all_containers",
    "--follow": None,
    "-f": None,
    "--previous": None,
    "-p": None,
    "--timestamps": None,
    "--prefix": None,
    "--ignore-errors": None,
    "--all-pods": None,
    "--insecure-skip-tls-verify-backend": None,
}
WORKLOAD_KINDS = ("deployment", "deployments", "deploy")


class UnresolvedError(ValueError):
    """The command names pods this checker cannot tie to a workload."""


@dataclass(frozen=True)
class LogsCommand:
    """What a `kubectl logs` command line asks for."""

    namespace: str | None = None
    container: str | None = None
    all_containers: bool = False
    selector: dict[str, str] = field(default_factory=dict)
    target: str | None = None


def parse(argv: Sequence[str]) -> LogsCommand:
    """The request of ``kubectl [global flags] logs [flags] [POD | TYPE/NAME]``."""
    words = list(argv)
    if words[:1] != ["kubectl"] or "logs" not in words:
        raise ValueError(f"not a kubectl logs command: {argv}")
    values: dict[str, Any] = {}
    positional: list[str] = []
    rest = words[1:]
    while rest:
        word = rest.pop(0)
        if word == "logs":
            continue
        name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if word.startswith("-") and not word.startswith("--") and len(word) > 2:
            name, value, eq = word[:2], word[2:].removeprefix("="), "="
        if name in VALUE_OPTIONS:
            if not eq:
                value = rest.pop(0)
            key = VALUE_OPTIONS[name]
            if key:
                values[key] = value
        elif name in FLAG_OPTIONS:
            key = FLAG_OPTIONS[name]
            if key:
                values[key] = value.lower() != "false" if eq else True
        elif word.startswith("-"):
            raise ValueError(f"unknown kubectl logs option {word!r} in {argv}")
        else:
            positional.append(word)
    if len(positional) > 1:
        # `kubectl logs POD CONTAINER` is the old form of -c.
        values.setdefault("container", positional[1])
    selector = {}
    if "selector" in values:
        for term in values.pop("selector").split(","):
            key, _, val = term.partition("=")
            selector[key] = val.lstrip("=")
    return LogsCommand(selector=selector, target=positional[0] if positional else None, **values)


def _names(pod: dict[str, Any], *kinds: str) -> list[str]:
    spec = pod["spec"]
    return [c["name"] for kind in kinds for c in spec.get(kind, [])]


def container_read(pod: dict[str, Any], command: LogsCommand) -> list[str]:
    """The containers of ``pod`` (a pod template) that ``command`` prints."""
    if command.all_containers:
        return _names(pod, "initContainers", "containers", "ephemeralContainers")
    every = _names(pod, "containers", "initContainers", "ephemeralContainers")
    name = command.container
    if not name:
        default = pod.get("metadata", {}).get("annotations", {}).get(DEFAULT_CONTAINER)
        if default and default in every:
            name = default
    if not name:
        name = pod["spec"]["containers"][0]["name"]
    if name not in every:
        raise ValueError(f"container {name} is not valid for the pod, out of: {every}")
    return [name]


def select(
    command: LogsCommand,
    pods: Mapping[str, dict[str, Any]],
    loops: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Names (workloads) of the pods ``command`` reads, among ``pods`` (workload -> template).

    A shell variable as the pod (``"$p"``) is resolved through ``loops``: the ``kubectl get pods
    -l ...`` command whose output a ``for`` loop binds it to."""
    if command.selector:
        return [
            name
            for name, pod in pods.items()
            if all(
                pod.get("metadata", {}).get("labels", {}).get(k) == v
                for k, v in command.selector.items()
            )
        ]
    target = command.target
    if target is None:
        raise UnresolvedError("no pod, resource or selector")
    if target.startswith("$"):
        variable = target.strip("${}")
        listed = (loops or {}).get(variable)
        if not listed:
            raise UnresolvedError(f"{target} is not bound by a `for` over `kubectl get pods`")
        words = list(listed)
        flags = [w for w in ("-l", "--selector") if w in words]
        if words[:3] != ["kubectl", "get", "pods"] or not flags:
            raise UnresolvedError(f"{target} lists pods without a label selector: {listed}")
        chosen = words[words.index(flags[0]) + 1]
        return select(parse(["kubectl", "logs", "-l", chosen]), pods)
    kind, slash, name = target.partition("/")
    if slash:
        if kind.lower() in WORKLOAD_KINDS:
            return [name] if name in pods else []
        target = name
    # A pod's name is its workload's name and suffixes; documentation writes placeholders
    # such as <new-server-pod>.
    words = set(re.split(r"[^a-z0-9]+", target.lower()))
    matches = [name for name in pods if name in words or target.startswith(name + "-")]
    if len(matches) != 1:
        raise UnresolvedError(f"{target!r} does not name one of {sorted(pods)}")
    return matches


def containers_read(
    argv: Sequence[str],
    pods: Mapping[str, dict[str, Any]],
    loops: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:
    """Workload -> containers read, for a `kubectl logs` command line over ``pods``."""
    command = parse(argv)
    return {name: container_read(pods[name], command) for name in select(command, pods, loops)}
