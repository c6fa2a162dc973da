"""Tilt's resource assembly, for the Tiltfile's stand-in: what Tilt does, once a Tiltfile has run,
with the objects given to ``k8s_yaml()`` and the ``k8s_resource()`` and ``local_resource()``
calls; the order of the first deploys; and what ``tilt down`` deletes. Tilt cannot run here.

Each rule names the file of tilt-dev/tilt (and its function) it follows. Where Tilt stops the
load, this module raises :class:`LoadError` with Tilt's own message, so a Tiltfile that Tilt
refuses is refused here too. ``tilt down`` loads the Tiltfile exactly as ``tilt up`` does
(``internal/cli/down.go``, ``downCmd.down`` calls the same loader), so every load rule holds
for both. Test modules load this file by path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Entity = dict[str, Any]

#: ``model.UnresourcedYAMLManifestName``: the resource that holds every object no other holds.
UNCATEGORIZED = "uncategorized"


class LoadError(Exception):
    """Tilt stops loading the Tiltfile (``tilt up`` shows the error, ``tilt down`` exits)."""


def quoted(text: str) -> str:
    """Go's ``%q`` for the plain strings these messages hold."""
    return json.dumps(text)


def quoted_list(items: Iterable[str]) -> str:
    """``sliceutils.QuotedStringList``: each quoted, joined by commas."""
    return ", ".join(quoted(i) for i in items)


# -- objects: names, namespaces, pod templates, images ------------------------------------------


def kind(e: Entity) -> str:
    return str(e["kind"])


def name(e: Entity) -> str:
    return str(e["metadata"]["name"])


def namespace(e: Entity) -> str:
    """``K8sEntity.Namespace`` (internal/k8s/entity.go): ``default`` when the object names none,
    cluster-scoped objects included."""
    return str(e["metadata"].get("namespace") or "default")


def group(e: Entity) -> str:
    """The API group; ``core`` for the empty group (``potentialNames``, internal/k8s/names.go)."""
    api_version = str(e["apiVersion"])
    return api_version.split("/")[0] if "/" in api_version else "core"


def full_name(e: Entity) -> str:
    """``fullNameFromK8sEntity`` (internal/tiltfile/tiltfile_state.go): name:Kind:namespace."""
    return f"{name(e)}:{kind(e)}:{namespace(e)}"


def pod_templates(e: Entity) -> list[Entity]:
    """``ExtractPodTemplateSpec`` (internal/k8s/extract.go) collects every PodTemplateSpec in
    the object: a Deployment's, StatefulSet's, DaemonSet's, ReplicaSet's or Job's
    ``spec.template``, a CronJob's ``spec.jobTemplate.spec.template``. A bare Pod has none."""
    spec = e.get("spec") or {}
    found = []
    if isinstance(spec.get("template"), dict) and "spec" in spec["template"]:
        found.append(spec["template"])
    job = (spec.get("jobTemplate") or {}).get("spec") or {}
    if isinstance(job.get("template"), dict):
        found.append(job["template"])
    return found


def images(e: Entity) -> list[str]:
    """The images of every container and init container: Tilt's default image locator
    (``FindImages``, internal/k8s/image.go) reads every container spec, a bare Pod's included."""
    specs = [t.get("spec") or {} for t in pod_templates(e)]
    if kind(e) == "Pod":
        specs.append(e.get("spec") or {})
    return [
        str(c["image"])
        for spec in specs
        for c in [*spec.get("initContainers", []), *spec.get("containers", [])]
        if c.get("image")
    ]


def is_workload(e: Entity) -> bool:
    """``tiltfileState.isWorkload`` (internal/tiltfile/tiltfile_state.go): an object is a
    workload when a ``k8s_kind()`` selector matches it (this Tiltfile calls none) or when it
    holds an image, any image, built here or pulled (Envoy's, the xDS control plane's)."""
    return bool(images(e))


def service_selects(service: Entity, labels: dict[str, str]) -> bool:
    """``K8sEntity.SelectorMatchesLabels`` (internal/k8s/label.go): only a Service is grouped;
    every key of its ``spec.selector`` must be in the pod's labels with the same value, so a
    Service with no selector matches every pod. Namespaces are not compared."""
    if kind(service) != "Service" or group(service) != "core":
        return False
    selector = (service.get("spec") or {}).get("selector") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def potential_names(e: Entity, min_components: int) -> list[str]:
    """``potentialNames`` (internal/k8s/names.go): name, name:kind, name:kind:namespace,
    name:kind:namespace:group, lower-cased, from ``min_components`` parts on."""
    parts = [name(e), kind(e), namespace(e), group(e)]
    return [":".join(parts[: i + 1]).lower() for i in range(min_components - 1, len(parts))]


def unique_names(workloads: Sequence[Entity]) -> list[str]:
    """``UniqueNames`` (internal/k8s/names.go), as ``calculateResourceNames`` calls it: each
    workload's resource takes the shortest potential name no other workload wants; two
    workloads with all four parts equal stop the load."""
    counts: dict[str, int] = {}
    for w in workloads:
        for n in potential_names(w, 1):
            counts[n] = counts.get(n, 0) + 1
    names = []
    for w in workloads:
        candidates = potential_names(w, 1)
        unique = next((n for n in candidates if counts[n] == 1), None)
        if unique is None:
            raise LoadError(f"Duplicate YAML Entity: {candidates[-1]} has been detected")
        names.append(unique)
    return names


def fragments_to_entities(entities: Iterable[Entity]) -> dict[str, list[Entity]]:
    """``FragmentsToEntities`` (internal/k8s/names.go): every fragment (foo, foo:secret,
    foo:secret:default, foo:secret:default:core) to the objects it names."""
    out: dict[str, list[Entity]] = {}
    for e in entities:
        for n in potential_names(e, 1):
            out.setdefault(n, []).append(e)
    return out


@dataclass(frozen=True)
class ObjectSelector:
    """``SelectorFromString`` (internal/k8s/object_selector.go): ``name[:kind[:namespace]]``,
    each part matched whole and case-insensitively; a part left out matches anything."""

    name: str
    kind: str = ""
    namespace: str = ""

    @classmethod
    def parse(cls, text: str) -> ObjectSelector:
        if not text:
            raise LoadError("selector can't be empty")
        parts = text.split(":")
        if len(parts) > 3:
            raise LoadError(
                "Too many parts in selector. Selectors must contain between 1 and 3 parts "
                f"(colon separated), found {len(parts)} parts in {text}"
            )
        return cls(*parts)

    def matches(self, e: Entity) -> bool:
        def whole(pattern: str, value: str) -> bool:
            return not pattern or re.fullmatch(re.escape(pattern), value, re.IGNORECASE) is not None

        return (
            whole(self.name, name(e))
            and whole(self.kind, kind(e))
            and whole(self.namespace, namespace(e))
        )


# -- the Tiltfile's calls -----------------------------------------------------------------------

#: A label (``k8s_resource`` docstring, internal/tiltfile/api/__init__.py): starts and ends with
#: an alphanumeric character, may hold ``_``, ``-`` and ``.``, at most 63 characters.
LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")


@dataclass
class ResourceOptions:
    """What one ``k8s_resource()`` call asked for (``k8sResourceOptions``, k8s.go)."""

    workload: str
    new_name: str
    objects: list[str]
    resource_deps: list[str]
    port_forwards: list[Any]
    labels: list[str]

    @property
    def manually_grouped(self) -> bool:
        return not self.workload

    @property
    def key(self) -> str:
        return self.workload or self.new_name


def check_call(options: ResourceOptions, earlier: dict[str, ResourceOptions]) -> None:
    """The checks ``k8sResourceV2`` (internal/tiltfile/k8s.go) makes while the Tiltfile runs."""
    if options.key in earlier:
        raise LoadError(f"k8s_resource already called for {options.key}")
    if options.manually_grouped and not options.objects:
        raise LoadError(
            "k8s_resource doesn't specify a workload or any objects. All non-workload "
            "resources must specify 1 or more objects"
        )
    if options.manually_grouped and not options.new_name:
        raise LoadError("k8s_resource has only non-workload objects but doesn't provide a new_name")
    for label in options.labels:
        if not LABEL.fullmatch(label):
            raise LoadError(f"labels: {quoted(label)} is not a valid label")


@dataclass(frozen=True)
class LocalResource:
    name: str
    resource_deps: tuple[str, ...] = ()
    allow_parallel: bool = False


# -- assembly -----------------------------------------------------------------------------------


@dataclass
class Resource:
    """One Kubernetes resource: its objects, and what its ``k8s_resource()`` call set."""

    name: str
    entities: list[Entity] = field(default_factory=list)
    manually_grouped: bool = False
    options: ResourceOptions | None = None

    @property
    def resource_deps(self) -> list[str]:
        return self.options.resource_deps if self.options else []


@dataclass
class Assembly:
    """The resources a load ends with, in Tilt's order: Kubernetes resources (workloads in YAML
    order, then grouped ones), local resources, then ``uncategorized`` when anything is left
    (``loadManifests``, tiltfile_state.go)."""

    resources: list[Resource]
    local: list[LocalResource]
    uncategorized: list[Entity]

    @property
    def by_name(self) -> dict[str, Resource]:
        return {r.name: r for r in self.resources}

    def names(self) -> list[str]:
        tail = [UNCATEGORIZED] if self.uncategorized else []
        return [r.name for r in self.resources] + [r.name for r in self.local] + tail

    def holder(self, e: Entity) -> str:
        """The resource that deploys the object of ``e``'s group, kind, namespace and name."""
        key = potential_names(e, 4)
        for r in self.resources:
            if any(potential_names(x, 4) == key for x in r.entities):
                return r.name
        if any(potential_names(x, 4) == key for x in self.uncategorized):
            return UNCATEGORIZED
        raise KeyError(full_name(e))

    def deps(self, resource: str) -> list[str]:
        if resource in self.by_name:
            return self.by_name[resource].resource_deps
        local = {r.name: r for r in self.local}
        return list(local[resource].resource_deps) if resource in local else []

    def waits_for(self, resource: str) -> set[str]:
        """Every resource ``resource`` waits for through ``resource_deps``, transitively."""
        seen: set[str] = set()
        todo = list(self.deps(resource))
        while todo:
            dep = todo.pop()
            if dep not in seen:
                seen.add(dep)
                todo.extend(self.deps(dep))
        return seen

    def deploys_before(self, first: str, then: str) -> bool:
        """Whether ``first`` has finished its first deploy before ``then`` starts its own.

        ``NextTargetToBuild`` (internal/engine/buildcontrol/build_control.go): a local resource
        that may not run in parallel (``allow_parallel=False``, the default) and waits for
        nothing goes before every other resource and holds them all while it runs
        (``NextUnbuiltTargetToBuild``, ``IsBuildingUnparallelizableLocalTarget``);
        ``uncategorized`` goes next, and every Kubernetes resource is held while it applies
        (``IsBuildingUncategorizedYAML``, ``HoldK8sTargets``); a resource's first build waits
        until each of its ``resource_deps`` has been ready or succeeded once
        (``waitingOnDependencies``)."""
        if first in self.waits_for(then):
            return True
        local = {r.name: r for r in self.local}
        if first in local and not local[first].allow_parallel and not local[first].resource_deps:
            return then not in local
        return first == UNCATEGORIZED and then in self.by_name


def assemble(
    entities: Sequence[Entity],
    calls: Sequence[ResourceOptions],
    local: Sequence[LocalResource],
) -> Assembly:
    """Tilt's assembly after the Tiltfile ran: ``assembleK8sV2`` (tiltfile_state.go)."""
    by_name: dict[str, Resource] = {}
    resources: list[Resource] = []

    def make(resource_name: str) -> Resource:
        # makeK8sResource (k8s.go)
        if resource_name in by_name:
            raise LoadError(f"k8s_resource named {quoted(resource_name)} already exists")
        r = Resource(resource_name)
        by_name[resource_name] = r
        resources.append(r)
        return r

    # assembleK8sByWorkload: each workload is a resource, with the Services that select its pods
    # (FilterByMatchesPodTemplateSpec, internal/k8s/entity.go), taken from what is still left.
    workloads = [e for e in entities if is_workload(e)]
    rest = [e for e in entities if not is_workload(e)]
    for resource_name, workload in zip(unique_names(workloads), workloads, strict=True):
        r = make(resource_name)
        r.entities.append(workload)
        rest = take_services(r, workload, rest)
    # assembleK8sUnresourced: objects with a pod template but no image, by their name.
    for e in [e for e in rest if pod_templates(e)]:
        rest.remove(e)
        r = by_name.get(name(e)) or make(name(e))
        r.entities.append(e)
        rest = take_services(r, e, rest)

    everything = [e for r in resources for e in r.entities] + rest
    fragments = fragments_to_entities(everything)
    full_names = [full_name(e) for e in everything]
    for options in calls:
        if options.manually_grouped:
            make(options.new_name).manually_grouped = True
        r = by_name.get(options.key)
        if r is None:
            raise LoadError(
                f"k8s_resource specified unknown resource {quoted(options.key)}. "
                f"known resources: {', '.join(by_name)}"
            )
        r.options = options
        if options.new_name and options.new_name != r.name:
            if options.new_name in by_name:
                raise LoadError(
                    f"k8s_resource specified to rename {quoted(r.name)} to "
                    f"{quoted(options.new_name)}, but there already exists a resource with "
                    "that name"
                )
            del by_name[r.name]
            r.name = options.new_name
            by_name[r.name] = r
        selectors = [ObjectSelector.parse(o) for o in options.objects]
        for text, selector in zip(options.objects, selectors, strict=True):
            rest = take_object(r, text, selector, fragments, full_names, rest)

    for r in resources:
        # validateK8s
        if not r.entities:
            raise LoadError(
                f"resource {quoted(r.name)}: could not associate any k8s YAML with this resource"
            )
    assembly = Assembly(resources, list(local), rest)
    validate_dependencies(assembly)
    return assembly


def take_services(r: Resource, workload: Entity, rest: list[Entity]) -> list[Entity]:
    """Move every Service that selects the pods of one of ``workload``'s pod templates from
    ``rest`` into ``r`` (``FilterByMatchesPodTemplateSpec``, internal/k8s/entity.go)."""
    for template in pod_templates(workload):
        labels = (template.get("metadata") or {}).get("labels") or {}
        r.entities += [e for e in rest if service_selects(e, labels)]
        rest = [e for e in rest if not service_selects(e, labels)]
    return rest


def take_object(
    r: Resource,
    text: str,
    selector: ObjectSelector,
    fragments: dict[str, list[Entity]],
    full_names: list[str],
    rest: list[Entity],
) -> list[Entity]:
    """One fragment of ``objects=`` (the objects loop of ``assembleK8sV2``): it must name
    exactly one of all the objects, and that object must still be unclaimed; an object Tilt
    already grouped with a workload (a Service that selects its pods), or that another
    ``objects=`` took, stops the load."""
    named = fragments.get(text.lower(), [])
    if not named:
        raise LoadError(
            f"No object identified by the fragment {quoted(text)} could be found. "
            f"Possible objects are: {quoted_list(full_names)}"
        )
    if len(named) > 1:
        raise LoadError(
            f"{quoted(text)} is not a unique fragment. Objects that match {quoted(text)} are "
            f"{quoted_list(full_name(e) for e in named)}"
        )
    left = [e for e in rest if selector.matches(e)]
    if not left:
        raise LoadError(
            f"No object identified by the fragment {quoted(text)} could be found in remaining "
            f"YAML. Valid remaining fragments are: {quoted_list(full_name(e) for e in rest)}"
        )
    r.entities.append(left[0])
    return [e for e in rest if e is not left[0]]


def validate_dependencies(assembly: Assembly) -> None:
    """``validateResourceDependencies`` (tiltfile_state.go): every dependency names a resource
    of the load (``uncategorized`` included), none names itself, and there is no cycle."""
    known = set(assembly.names())
    for resource in assembly.names():
        for dep in assembly.deps(resource):
            if dep == resource:
                raise LoadError(f"resource {resource} specified a dependency on itself")
            if dep not in known:
                raise LoadError(
                    f"resource {resource} specified a dependency on unknown resource {dep}"
                )
    for resource in assembly.names():
        if resource in assembly.waits_for(resource):
            raise LoadError(f"cycle detected in resource dependency graph: {resource}")


def down(assembly: Assembly, *, delete_namespaces: bool) -> list[Entity]:
    """What ``tilt down`` deletes (``deleteK8sEntities``, internal/cli/down.go): every object
    of every Kubernetes resource, ``uncategorized`` included, but for those annotated
    ``tilt.dev/down-policy: keep`` and, without ``--delete-namespaces``, the Namespaces. It does
    not undo local resources."""
    every = [e for r in assembly.resources for e in r.entities] + assembly.uncategorized
    kept = [
        e
        for e in every
        if ((e["metadata"].get("annotations") or {}).get("tilt.dev/down-policy")) != "keep"
    ]
    if delete_namespaces:
        return kept
    return [e for e in kept if not (kind(e) == "Namespace" and group(e) == "core")]
