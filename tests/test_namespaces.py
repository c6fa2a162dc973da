"""One rule from a scenario's name to its namespace, ``grpc-lb-<scenario>``, the same in every
overlay, in skaffold.yaml and in the Tiltfile (checked in test_tiltfile.py, which runs it), and
never a namespace that a tool the project installs owns by default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hellolb_lab import catalogue

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir())
#: The rule itself lives in the catalogue; this checks that every tool follows it.
PREFIX = catalogue.NAMESPACE_PREFIX
#: Namespaces that tools the project installs or relies on take by default: Linkerd's control
#: plane and its extensions, and Kubernetes' own.
OWNED_BY_TOOLS = {"linkerd", "linkerd-viz", "linkerd-jaeger", "linkerd-multicluster"}
OWNED_BY_TOOLS |= {"default", "kube-system", "kube-public", "kube-node-lease"}
#: Kinds without a namespace; their names carry the scenario's namespace instead.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


@pytest.mark.parametrize("folder", OVERLAYS)
def test_every_overlay_renders_into_grpc_lb_plus_its_folder_name(folder, docs_of):
    docs = docs_of(folder)
    namespaces = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    namespaces |= {d["metadata"].get("namespace") for d in docs if d["kind"] not in CLUSTER_SCOPED}
    assert namespaces == {PREFIX + folder}


@pytest.mark.parametrize("folder", OVERLAYS)
def test_cluster_wide_objects_are_named_after_their_scenarios_namespace(folder, docs_of):
    # A ClusterRole has no namespace to keep two scenarios (or anything else installed)
    # apart: its name has to.
    for d in docs_of(folder):
        if d["kind"] in CLUSTER_SCOPED - {"Namespace"}:
            assert d["metadata"]["name"].startswith(PREFIX + folder + "-"), d["metadata"]["name"]


def test_no_scenario_namespace_is_one_a_tool_owns():
    assert not {PREFIX + folder for folder in OVERLAYS} & OWNED_BY_TOOLS


def test_skaffold_profiles_name_only_their_own_namespace():
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    profiles = {p["name"]: p for p in config["profiles"]}
    assert sorted(profiles) == OVERLAYS
    for name, profile in profiles.items():
        named = set(re.findall(r"namespace: (\S+)", yaml.safe_dump(profile)))
        assert named == {PREFIX + name}, name
    top = {k: v for k, v in config.items() if k != "profiles"}
    assert set(re.findall(r"namespace: (\S+)", yaml.safe_dump(top))) == {PREFIX + "headless"}
