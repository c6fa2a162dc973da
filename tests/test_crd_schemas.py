"""Every custom resource the manifests create, validated against its CRD's own schema.

The CRDs come from ``<repository root>/../shared/crds/`` (Gateway API v1.2.1's standard channel,
the release k8s/linkerd/ensure-linkerd.sh installs, and Linkerd 2.19's policy CRDs; its README
names their upstream files). Each object of every rendered overlay and every k8s/uneven folder
whose API group is not one of Kubernetes' own must have a CRD there, its version must be served,
and the object must match that version's ``openAPIV3Schema`` (jsonschema). The CRDs' CEL rules
(``x-kubernetes-validations``) are not evaluated: only an API server runs them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hellolb_lab import catalogue

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT.parent / "shared" / "crds"
UNEVEN = sorted(p for p in (ROOT / "k8s" / "uneven").iterdir() if p.is_dir())
#: API groups Kubernetes serves itself (kubernetes-validate checks those objects).
BUILT_IN = {"", "apps", "batch", "policy", "autoscaling", "rbac.authorization.k8s.io"}
BUILT_IN |= {"networking.k8s.io", "discovery.k8s.io", "scheduling.k8s.io", "storage.k8s.io"}
BUILT_IN |= {"coordination.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io"}

pytestmark = pytest.mark.skipif(
    not CRDS.is_dir(),
    reason=f"no CRD folder at <repository root>/../shared/crds ({CRDS}): the custom resources "
    "cannot be validated against their CRDs' schemas offline",
)


def group_version(obj: dict[str, Any]) -> tuple[str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    return group, version


def crd_versions() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> that CRD version, for every CRD in the folder."""
    found = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                found[(spec["group"], version["name"], spec["names"]["kind"])] = version
    return found


def custom_resources(docs_of, kustomize_dir) -> list[tuple[str, dict[str, Any]]]:
    """(where, object) for every object of a non-built-in group the manifests render."""
    objects = [(name, d) for name in catalogue.names() for d in docs_of(name)]
    for folder in UNEVEN:
        docs = yaml.safe_load_all(kustomize_dir(folder))
        objects += [(f"uneven/{folder.name}", d) for d in docs if isinstance(d, dict)]
    return [(where, d) for where, d in objects if group_version(d)[0] not in BUILT_IN]


def validate(obj: dict[str, Any], crds: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    group, version = group_version(obj)
    key = (group, version, obj["kind"])
    assert key in crds, f"no CRD in {CRDS.name}/ defines {obj['kind']} {obj['apiVersion']}"
    assert crds[key]["served"], f"{obj['apiVersion']} {obj['kind']} is not served"
    schema = crds[key]["schema"]["openAPIV3Schema"]
    jsonschema.validate(obj, schema, cls=jsonschema.Draft4Validator)


def test_the_folder_holds_the_crds_the_scenarios_need():
    crds = crd_versions()
    assert ("gateway.networking.k8s.io", "v1", "GRPCRoute") in crds
    assert ("policy.linkerd.io", "v1beta3", "Server") in crds


def test_every_custom_resource_matches_its_crds_schema(docs_of, kustomize_dir):
    crds = crd_versions()
    found = custom_resources(docs_of, kustomize_dir)
    # The canary's weighted GRPCRoute, at least; any other custom resource is validated too.
    assert ("canary", "GRPCRoute") in {(where, d["kind"]) for where, d in found}
    for where, obj in found:
        try:
            validate(obj, crds)
        except jsonschema.ValidationError as error:
            pytest.fail(f"{where}: {obj['kind']}/{obj['metadata']['name']}: {error.message}")


def break_weight(r: dict[str, Any]) -> None:
    r["spec"]["rules"][0]["backendRefs"][0]["weight"] = 1_000_001  # BackendRef's maximum + 1


def break_port(r: dict[str, Any]) -> None:
    r["spec"]["parentRefs"][0]["port"] = 70000


def break_match(r: dict[str, Any]) -> None:
    r["spec"]["rules"][0]["matches"] = [{"method": {"type": "Fuzzy", "service": "a.B"}}]


def break_rules(r: dict[str, Any]) -> None:
    r["spec"]["rules"] = {"backendRefs": []}


@pytest.mark.parametrize("break_it", [break_weight, break_port, break_match, break_rules])
def test_the_schema_refuses_a_broken_route(docs_of, break_it):
    (found,) = [d for d in docs_of("canary") if d["kind"] == "GRPCRoute"]
    broken = copy.deepcopy(found)
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, crd_versions())
