"""k8s/linkerd/ensure-linkerd.sh against stand-in ``kubectl`` and ``linkerd`` commands that
record their arguments and answer from a small fake cluster state (one file per fact): it finds a
control plane wherever it runs and however it was installed, uses it as it is, never installs
over one, finishes or explains an install left half done, and installs only on a cluster
without Linkerd."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "k8s" / "linkerd" / "ensure-linkerd.sh"

#: Linkerd's Gateway API compatibility table: the releases each Linkerd line supports, oldest
#: and newest (tests/upstream_facts.py, with its sources).
_FACTS = ROOT / "tests" / "upstream_facts.py"
_spec = importlib.util.spec_from_file_location("upstream_facts", _FACTS)
assert _spec is not None
assert _spec.loader is not None
facts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(facts)
GATEWAY_API_SUPPORTED = facts.LINKERD_GATEWAY_API

READY = "linkerd-destination=1/1\nlinkerd-identity=1/1\nlinkerd-proxy-injector=1/1\n"
STARTING = "linkerd-destination=/1\nlinkerd-identity=1/1\nlinkerd-proxy-injector=1/1\n"

# State files: `destination` (namespaces with a linkerd-destination Deployment, as the label
# selector finds them), `deployments-NS` (name=ready/wanted per control-plane Deployment),
# `webhook` (the namespace the injector's webhook points to), `config` (namespaces holding a
# linkerd-config ConfigMap), `overrides-NS` (a CLI install's stored values), `gateway` (the
# Gateway API bundle version), `crds` (Linkerd's CRDs).
FAKE_KUBECTL = r"""#!/usr/bin/env bash
echo "kubectl $*" >> "$CALLS"
args=" $* "
ns=""
prev=""
for a in "$@"; do [[ "$prev" == "-n" ]] && ns="$a"; prev="$a"; done
case "$args" in
  *" apply "*) cat >> "$STATE/applied"; exit 0 ;;
  *" wait "*) exit 0 ;;
  *" get deployments --all-namespaces -l linkerd.io/control-plane-component=destination "*)
     [[ -e "$STATE/unreachable" ]] && { echo "connection refused" >&2; exit 1; }
     cat "$STATE/destination" 2>/dev/null; exit 0 ;;
  *" get deployments -n "*" -l linkerd.io/control-plane-ns="*)
     cat "$STATE/deployments-$ns" 2>/dev/null; exit 0 ;;
  *" get mutatingwebhookconfiguration linkerd-proxy-injector-webhook-config "*)
     [[ -e "$STATE/webhook" ]] || { echo "NotFound" >&2; exit 1; }
     [[ "$args" == *jsonpath* ]] && cat "$STATE/webhook"; exit 0 ;;
  *" get configmaps --all-namespaces --field-selector metadata.name=linkerd-config "*)
     cat "$STATE/config" 2>/dev/null; exit 0 ;;
  *" get secret linkerd-config-overrides -n "*) [[ -e "$STATE/overrides-$ns" ]]; exit ;;
  *" get crd httproutes.gateway.networking.k8s.io "*) [[ -e "$STATE/gateway" ]] || exit 1
     [[ "$args" == *jsonpath* ]] && cat "$STATE/gateway"; exit 0 ;;
  *" get crd servers.policy.linkerd.io "*) [[ -e "$STATE/crds" ]]; exit ;;
esac
echo "unexpected kubectl call: $*" >&2
exit 99
"""

# Like the real CLI, `install` refuses while linkerd-config exists in its namespace
# (linkerd2 cli/cmd/install.go, errMsgLinkerdConfigResourceConflict, whose text this prints),
# and `upgrade` starts from the values a CLI install stored in the linkerd-config-overrides
# Secret (cli/cmd/upgrade.go, loadStoredValues). Without that Secret this stand-in refuses;
# what the real CLI then does was not checked against its source.
FAKE_LINKERD = r"""#!/usr/bin/env bash
echo "linkerd $*" >> "$CALLS"
ns=linkerd
prev=""
for a in "$@"; do [[ "$prev" == "--linkerd-namespace" ]] && ns="$a"; prev="$a"; done
case " $* " in
  *" version "*) echo "$LINKERD_VERSION" ;;
  *" install --crds "*) echo "kind: CustomResourceDefinition" ;;
  *" install "*)
     if grep -qx "$ns" "$STATE/config" 2>/dev/null; then
       echo "Can't install the Linkerd control plane in the '$ns' namespace." \
            "Reason: ConfigMap/linkerd-config already exists." >&2
       exit 1
     fi
     echo "kind: ControlPlane" ;;
  *" upgrade "*) [[ -e "$STATE/overrides-$ns" ]] || { echo "no stored values" >&2; exit 1; }
     echo "kind: Upgrade" ;;
  *" check "*) exit 0 ;;
  *) echo "unexpected linkerd call: $*" >&2; exit 99 ;;
esac
"""


def run(tmp_path: Path, *, state=None, linkerd=True, version="edge-25.10.1", env=None):
    """Run the script against the stand-ins; return its result and the recorded calls."""
    bin_dir = tmp_path / "bin"
    state_dir = tmp_path / "state"
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for name, content in (state or {}).items():
        (state_dir / name).write_text(content)
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    if linkerd:
        (bin_dir / "linkerd").write_text(FAKE_LINKERD)
        (bin_dir / "linkerd").chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    system_path = os.pathsep.join(p for p in ("/usr/bin", "/bin") if Path(p).is_dir())
    result = subprocess.run(
        [bash, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": f"{bin_dir}{os.pathsep}{system_path}",
            "CALLS": str(calls),
            "STATE": str(state_dir),
            "LINKERD_VERSION": version,
            **(env or {}),
        },
    )
    return result, calls.read_text().splitlines()


def changes(calls: list[str]) -> list[str]:
    """Calls that change the cluster or render something to apply."""
    return [
        c for c in calls if " apply " in c or c.startswith(("linkerd install", "linkerd upgrade"))
    ]


def gateway_version(calls: list[str]) -> tuple[int, ...] | None:
    for call in calls:
        if "gateway-api/releases/download/" in call:
            tag = call.split("/download/")[1].split("/")[0]
            return tuple(int(x) for x in tag.lstrip("v").split("."))
    return None


# -- a cluster without Linkerd


def test_missing_linkerd_cli_on_a_cluster_without_linkerd_is_explained(tmp_path):
    result, calls = run(tmp_path, linkerd=False)
    assert result.returncode == 1
    assert "linkerd CLI is not on PATH" in result.stderr
    assert "install Linkerd" in result.stderr
    assert not changes(calls)


def test_fresh_cluster_gets_crds_then_the_control_plane_in_linkerds_default_namespace(tmp_path):
    result, calls = run(tmp_path)
    assert result.returncode == 0, result.stderr
    # `linkerd install ... | kubectl apply -f -` run side by side, so each tool's calls are
    # compared in their own order.
    linkerd_steps = [c for c in calls if c.startswith("linkerd") and "version" not in c]
    applies = [c for c in calls if " apply " in c]
    assert linkerd_steps == [
        "linkerd install --crds",
        "linkerd check --pre --linkerd-namespace linkerd",
        "linkerd install --linkerd-namespace linkerd",
        "linkerd check --linkerd-namespace linkerd --wait 5m",
    ]
    assert applies[0].startswith("kubectl apply --server-side -f https://github.com/")
    assert applies[1:] == ["kubectl apply -f -", "kubectl apply -f -"]
    assert calls.index(applies[0]) < calls.index(linkerd_steps[0]), "Gateway API CRDs first"
    assert "kind: ControlPlane" in (tmp_path / "state" / "applied").read_text()


@pytest.mark.parametrize(
    ("version", "line"),
    [
        ("stable-2.19.2", "2.19"),
        ("enterprise-2.19.1", "2.19"),
        ("enterprise-2.18.3", "2.18"),
        ("stable-2.20.0", "2.20"),
        ("enterprise-2.20.1", "2.20"),
        # An edge release belongs to the newest stable line of its month.
        ("edge-25.10.1", "2.19"),
        ("edge-26.5.3", "2.19"),
        ("edge-26.6.1", "2.20"),
        ("edge-26.11.2", "2.20"),
    ],
)
def test_the_gateway_api_release_installed_is_one_linkerd_supports(tmp_path, version, line):
    result, calls = run(tmp_path, version=version)
    assert result.returncode == 0, result.stderr
    installed = gateway_version(calls)
    oldest, newest = GATEWAY_API_SUPPORTED[line]
    assert installed is not None
    assert oldest <= installed <= newest, f"{installed} is outside Linkerd {line}'s range"


def test_the_gateway_api_release_can_be_chosen(tmp_path):
    result, calls = run(tmp_path, env={"GATEWAY_API_VERSION": "v1.1.1"})
    assert result.returncode == 0, result.stderr
    assert gateway_version(calls) == (1, 1, 1)


def test_linkerd_2_17_brings_its_own_gateway_api_crds(tmp_path):
    result, calls = run(tmp_path, version="stable-2.17.1")
    assert result.returncode == 0, result.stderr
    assert gateway_version(calls) is None


def test_gateway_api_crds_already_there_are_kept_with_a_warning_when_unsupported(tmp_path):
    result, calls = run(tmp_path, state={"gateway": "v1.5.1"}, version="stable-2.19.2")
    assert result.returncode == 0, result.stderr
    assert gateway_version(calls) is None
    assert "warning" in result.stderr
    assert "v1.1.1 to v1.4.0 for Linkerd 2.19" in result.stderr
    quiet, _ = run(tmp_path / "ok", state={"gateway": "v1.4.0"}, version="stable-2.19.2")
    assert "warning" not in quiet.stderr


def version_text(version: tuple[int, ...]) -> str:
    return "v" + ".".join(map(str, version))


@pytest.mark.parametrize(
    ("version", "line"),
    [
        ("stable-2.18.1", "2.18"),
        ("stable-2.19.2", "2.19"),
        ("stable-2.20.0", "2.20"),
        ("edge-26.11.2", "2.20"),
        ("", "2.20"),
        ("stable-2.23.0", "2.20"),
    ],
)
def test_the_warning_follows_the_range_of_the_release_found(tmp_path, version, line):
    # A version the CLI did not tell, or a release newer than the table, is held to the
    # newest line the script knows.
    oldest, newest = GATEWAY_API_SUPPORTED[line]
    for case, bundle, warned in [
        ("oldest", oldest, False),
        ("newest", newest, False),
        ("older", (oldest[0], oldest[1] - 1, 0), True),
        ("newer", (newest[0], newest[1] + 1, 0), True),
    ]:
        result, _ = run(tmp_path / case, state={"gateway": version_text(bundle)}, version=version)
        assert result.returncode == 0, result.stderr
        expected = f"{version_text(oldest)} to {version_text(newest)} for Linkerd {line}"
        assert (expected in result.stderr) is warned, (case, result.stderr)
        assert ("warning" in result.stderr) is warned, (case, result.stderr)


def test_a_new_control_plane_can_go_to_another_namespace(tmp_path):
    result, calls = run(tmp_path, env={"LINKERD_NAMESPACE": "mesh"})
    assert result.returncode == 0, result.stderr
    assert "linkerd install --linkerd-namespace mesh" in calls


# -- a cluster that already runs Linkerd


@pytest.mark.parametrize("namespace", ["linkerd", "mesh"])
def test_a_ready_control_plane_is_used_at_once_wherever_it_runs(tmp_path, namespace):
    # A CLI install in `linkerd`, or a Helm install (no namespace label, no stored values) in
    # a namespace of the operator's choice: both are found by the destination's label.
    result, calls = run(
        tmp_path,
        state={"destination": namespace, f"deployments-{namespace}": READY, "webhook": namespace},
    )
    assert result.returncode == 0, result.stderr
    assert f"ready in namespace {namespace}" in result.stderr
    assert not changes(calls)
    # The fast path of every `skaffold dev` iteration: a few reads, no `linkerd check`.
    assert not [c for c in calls if c.startswith("linkerd")]
    assert len(calls) <= 3
    assert all(c.startswith("kubectl get ") for c in calls)


@pytest.mark.parametrize("namespace", ["linkerd", "mesh"])
def test_a_control_plane_still_starting_is_waited_for_not_reinstalled(tmp_path, namespace):
    state = {"destination": namespace, f"deployments-{namespace}": STARTING, "webhook": namespace}
    result, calls = run(tmp_path, state=state)
    assert result.returncode == 0, result.stderr
    assert not changes(calls)
    assert calls[-1] == f"linkerd check --linkerd-namespace {namespace} --wait 5m"


def test_a_control_plane_without_its_injector_webhook_is_not_ready(tmp_path):
    result, calls = run(tmp_path, state={"destination": "linkerd", "deployments-linkerd": READY})
    assert result.returncode == 0, result.stderr
    assert calls[-1] == "linkerd check --linkerd-namespace linkerd --wait 5m"


def test_using_a_control_plane_needs_no_linkerd_cli(tmp_path):
    state = {"destination": "mesh", "deployments-mesh": READY, "webhook": "mesh"}
    result, calls = run(tmp_path, state=state, linkerd=False)
    assert result.returncode == 0, result.stderr
    starting = {**state, "deployments-mesh": STARTING}
    result, calls = run(tmp_path / "starting", state=starting, linkerd=False)
    assert result.returncode == 0, result.stderr
    assert calls[-1] == (
        "kubectl wait --for=condition=Available --timeout=5m deployment -n mesh "
        "-l linkerd.io/control-plane-ns=mesh"
    )


def test_two_control_planes_are_refused(tmp_path):
    result, calls = run(tmp_path, state={"destination": "linkerd\nmesh\n"})
    assert result.returncode == 1
    assert "linkerd,mesh" in result.stderr
    assert not changes(calls)


# -- an install left half done


def test_an_unfinished_cli_install_is_finished_with_linkerd_upgrade(tmp_path):
    # `linkerd install | kubectl apply` stopped after linkerd-config and the stored values:
    # `linkerd install` would now refuse, `linkerd upgrade` renders the same install again.
    state = {"config": "linkerd\n", "overrides-linkerd": "", "crds": "", "gateway": "v1.2.1"}
    result, calls = run(tmp_path, state=state)
    assert result.returncode == 0, result.stderr
    # The two sides of one pipe, in either order.
    assert sorted(changes(calls)) == [
        "kubectl apply -f -",
        "linkerd upgrade --linkerd-namespace linkerd",
    ]
    assert calls[-1] == "linkerd check --linkerd-namespace linkerd --wait 5m"


@pytest.mark.parametrize(
    ("state", "named"),
    [
        # A Helm install (no stored values) that did not finish, in its own namespace.
        ({"config": "mesh\n"}, "linkerd-config"),
        # A CLI install whose stored values never made it.
        ({"config": "linkerd\n"}, "linkerd-config"),
        # Only the injector's webhook is left, pointing at a namespace.
        ({"webhook": "mesh"}, "webhook"),
    ],
)
def test_other_leftovers_are_explained_and_never_installed_over(tmp_path, state, named):
    result, calls = run(tmp_path, state=state)
    assert result.returncode == 1
    namespace = state.get("config", state.get("webhook", "")).strip()
    assert f"namespace {namespace} looks unfinished" in result.stderr
    assert named in result.stderr
    assert "never installs over it" in result.stderr
    assert f"linkerd uninstall --linkerd-namespace {namespace}" in result.stderr
    assert not changes(calls)


# -- how it talks to the cluster


def test_an_unreachable_cluster_is_explained(tmp_path):
    result, calls = run(tmp_path, state={"unreachable": ""})
    assert result.returncode == 1
    assert "cannot list Deployments" in result.stderr
    assert not changes(calls)


def test_skaffolds_kube_context_is_used_for_every_call(tmp_path):
    result, calls = run(tmp_path, env={"SKAFFOLD_KUBE_CONTEXT": "kind-grpc-lb-lab"})
    assert result.returncode == 0, result.stderr
    cluster_calls = [c for c in calls if "version --client" not in c]
    assert cluster_calls
    assert all(" --context kind-grpc-lb-lab " in f"{c} " for c in cluster_calls)
