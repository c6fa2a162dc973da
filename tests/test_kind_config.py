"""k8s/kind/cluster.yaml as ``kind create cluster --config`` reads it: kind cannot run here, so a
stand-in of its config loader checks the file by kind's own rules, each named beside its source
in kubernetes-sigs/kind. What it does not model: defaults, kubeadm and containerd patches, port
mapping and subnet checks (the file sets none of them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "k8s" / "kind" / "cluster.yaml"

#: The fields of the v1alpha4 types (pkg/apis/config/v1alpha4/types.go), by the YAML names the
#: strict decoder knows: Cluster (TypeMeta inline), Node, Networking.
CLUSTER_FIELDS = {"kind", "apiVersion", "name", "nodes", "networking", "featureGates",
                  "runtimeConfig", "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902",
                  "containerdConfigPatches", "containerdConfigPatchesJSON6902"}  # fmt: skip
NODE_FIELDS = {"role", "image", "labels", "extraMounts", "extraPortMappings", "gpus",
               "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902"}  # fmt: skip
NETWORKING_FIELDS = {"ipFamily", "apiServerPort", "apiServerAddress", "podSubnet",
                     "serviceSubnet", "disableDefaultCNI", "kubeProxyMode",
                     "dnsSearch"}  # fmt: skip
#: Cluster.Validate (pkg/internal/apis/config/validate.go): the name kind prefixes its node
#: containers with.
VALID_NAME = re.compile(r"^[a-z0-9.-]+$")
ROLES = {"control-plane", "worker"}


class KindConfigError(Exception):
    """kind create cluster refuses the config."""


def load(text: str, name: str | None = None) -> dict[str, Any]:
    """``encoding.Load`` (pkg/internal/apis/config/encoding/load.go), then ``Validate``:
    apiVersion and kind pick the decoder; the decoder is strict (``KnownFields(true)``), so an
    unknown or misspelt field is an error; ``--name`` overrides the file's name."""
    config = yaml.safe_load(text)
    if config.get("apiVersion") != "kind.x-k8s.io/v1alpha4":
        raise KindConfigError(f"unknown apiVersion: {config.get('apiVersion')}")
    if config.get("kind") != "Cluster":
        raise KindConfigError(f"unknown kind {config.get('kind')}")
    strict(config, CLUSTER_FIELDS, "Cluster")
    strict(config.get("networking") or {}, NETWORKING_FIELDS, "Networking")
    for node in config.get("nodes") or [{"role": "control-plane"}]:
        strict(node, NODE_FIELDS, "Node")
    cluster_name = name or config.get("name") or "kind"
    if not VALID_NAME.match(cluster_name):
        raise KindConfigError(f"'{cluster_name}' is not a valid cluster name")
    roles = [n.get("role", "control-plane") for n in config.get("nodes") or [{}]]
    for role in roles:
        if role not in ROLES:
            raise KindConfigError(f'"{role}" is not a valid node role')
    if "control-plane" not in roles:
        raise KindConfigError("must have at least one control-plane node")
    return config


def strict(mapping: dict[str, Any], known: set[str], type_name: str) -> None:
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise KindConfigError(f"field {unknown[0]} not found in type v1alpha4.{type_name}")


def makefile_cluster_name() -> str:
    (line,) = [
        ln for ln in (ROOT / "Makefile").read_text().splitlines() if ln.startswith("CLUSTER")
    ]
    return line.split("=")[-1].strip()


def test_kind_accepts_the_cluster_config_under_the_makefiles_name():
    config = load(CONFIG.read_text(), name=makefile_cluster_name())
    assert config["name"] == makefile_cluster_name()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["nodes"][1].update(roles="worker"), "field roles not found"),
        (lambda c: c.update(networkin={}), "field networkin not found"),
        (lambda c: c.update(networking={"podSubnets": "10.0.0.0/16"}), "podSubnets"),
        (lambda c: c["nodes"][0].update(role="master"), "not a valid node role"),
        (lambda c: c.update(nodes=[{"role": "worker"}]), "at least one control-plane"),
        (lambda c: c.update(apiVersion="kind.sigs.k8s.io/v1alpha3"), "unknown apiVersion"),
        (lambda c: c.update(name="gRPC_lab"), "not a valid cluster name"),
    ],
)
def test_the_stand_in_refuses_what_kind_refuses(change, message):
    config = yaml.safe_load(CONFIG.read_text())
    change(config)
    with pytest.raises(KindConfigError, match=message):
        load(yaml.safe_dump(config))
