#!/usr/bin/env bash
# Make sure the current cluster runs a ready Linkerd control plane. Used by
# `skaffold run -p linkerd` (deploy hook, before every deploy), by the Tiltfile
# (linkerd scenario) and by the end-to-end check. Safe to run again.
#
# 1. A control plane anywhere (found by its destination Deployment's label, in
#    any namespace, however it was installed: CLI or Helm) is used as it is.
#    If it is ready, the script returns at once; otherwise it waits for it.
#    Nothing is ever installed over it.
# 2. Pieces of an unfinished install (the injector's webhook, or a
#    `linkerd-config` ConfigMap, without a destination Deployment) stop the
#    script with an explanation, except one it can finish: a CLI install in
#    LINKERD_NAMESPACE, completed with `linkerd upgrade`.
# 3. On a cluster without Linkerd: the Gateway API CRDs (if absent), Linkerd's
#    CRDs (if absent), then the control plane with the CLI, in Linkerd's own
#    default namespace, `linkerd`. Then it waits until `linkerd check` passes.
#
# Environment:
#   LINKERD_NAMESPACE    where to install a new control plane (default linkerd)
#   GATEWAY_API_VERSION  Gateway API release to install when its CRDs are absent
#                        (default: v1.2.1, which Linkerd 2.18, 2.19 and 2.20
#                        all support; nothing for 2.17 and older, which bring
#                        their own)
#   LINKERD_WAIT         how long to wait for a control plane (default 5m)
#   SKAFFOLD_KUBE_CONTEXT  set by Skaffold; used as the kube context if present
set -euo pipefail

install_ns="${LINKERD_NAMESPACE:-linkerd}"
wait_for="${LINKERD_WAIT:-5m}"
ctx=()
if [[ -n "${SKAFFOLD_KUBE_CONTEXT:-}" ]]; then
  ctx=(--context "${SKAFFOLD_KUBE_CONTEXT}")
fi

# Linkerd's Gateway API compatibility table (linkerd.io/2/features/gateway-api;
# linkerd/website linkerd.io/content/2-edge/features/gateway-api.md): the
# oldest and newest release each stable line supports. The default is in all.
gateway_default="v1.2.1"
gateway_range() {
  case "$1" in
    18) echo "v1.1.1 v1.2.1" ;;
    19) echo "v1.1.1 v1.4.0" ;;
    20) echo "v1.2.1 v1.5.1" ;;
    *) return 1 ;;
  esac
}
newest_known=20
# The stable line an edge release edge-YY.M.N belongs to, by date: Linkerd 2.19
# shipped in October 2025 and 2.20 in June 2026 (linkerd.io/2026/06/23/
# announcing-linkerd-2.20); an edge release carries the newest stable line of
# its month.
edge_line() {
  local month=$(( 10#$1 * 100 + 10#$2 ))
  if (( month >= 2606 )); then echo 20
  elif (( month >= 2510 )); then echo 19
  else echo 18
  fi
}
# Names that do not change between installs (linkerd2's charts).
webhook=linkerd-proxy-injector-webhook-config
destination_label=linkerd.io/control-plane-component=destination

say() { printf 'ensure-linkerd: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# ${a[@]+"${a[@]}"} expands an empty array safely under `set -u` on old bash.
k() { kubectl ${ctx[@]+"${ctx[@]}"} "$@"; }
l5d() { linkerd ${ctx[@]+"${ctx[@]}"} "$@"; }
have_cli() { command -v linkerd >/dev/null 2>&1; }
need_cli() {
  have_cli || die "the linkerd CLI is not on PATH, and this cluster needs it to $1.
  Install it (see the README, 'Prerequisites'):
    curl --proto '=https' --tlsv1.2 -sSfL https://run.linkerd.io/install-edge | sh
    export PATH=\"\$HOME/.linkerd2/bin:\$PATH\"
  and run this again."
}
# Namespaces, one a line, of the objects a `kubectl get` lists.
namespaces_of() {
  k get "$@" -o jsonpath='{range .items[*]}{.metadata.namespace}{"\n"}{end}' | sort -u
}

# True when every control-plane Deployment in $1 has all its replicas ready and
# the injector's webhook is registered: the fast path, a few kubectl calls.
ready_in() {
  local ns="$1" states name counts
  states="$(k get deployments -n "${ns}" -l "linkerd.io/control-plane-ns=${ns}" \
    -o jsonpath='{range .items[*]}{.metadata.name}={.status.readyReplicas}/{.spec.replicas}{"\n"}{end}')" \
    || return 1
  for name in linkerd-destination linkerd-identity linkerd-proxy-injector; do
    grep -q "^${name}=" <<<"${states}" || return 1
  done
  while IFS='=' read -r name counts; do
    [[ -n "${name}" ]] || continue
    [[ -n "${counts%%/*}" && "${counts%%/*}" == "${counts##*/}" ]] || return 1
  done <<<"${states}"
  k get mutatingwebhookconfiguration "${webhook}" >/dev/null 2>&1
}

wait_ready() {
  local ns="$1"
  if ready_in "${ns}"; then
    say "Linkerd control plane ready in namespace ${ns}, used as it is"
    return 0
  fi
  say "waiting for the Linkerd control plane in namespace ${ns} (up to ${wait_for})"
  if have_cli; then
    l5d check --linkerd-namespace "${ns}" --wait "${wait_for}"
  else
    k wait --for=condition=Available --timeout="${wait_for}" \
      deployment -n "${ns}" -l "linkerd.io/control-plane-ns=${ns}"
  fi
  say "Linkerd is ready"
}

command -v kubectl >/dev/null 2>&1 || die "kubectl not found on PATH."

# 1. A control plane anywhere.
found="$(namespaces_of deployments --all-namespaces -l "${destination_label}")" \
  || die "cannot list Deployments in the cluster: is the kube context right and reachable?"
if [[ "$(grep -c . <<<"${found}")" -gt 1 ]]; then
  die "found Linkerd control planes in several namespaces: $(paste -sd, - <<<"${found}").
  A cluster runs one; remove the extra one before deploying the scenario."
fi
if [[ -n "${found}" ]]; then
  wait_ready "${found}"
  exit 0
fi

# 2. Pieces of an install that did not finish.
webhook_ns="$(k get mutatingwebhookconfiguration "${webhook}" \
  -o jsonpath='{.webhooks[0].clientConfig.service.namespace}' 2>/dev/null || true)"
config_ns="$(namespaces_of configmaps --all-namespaces --field-selector metadata.name=linkerd-config \
  2>/dev/null || true)"
leftover_ns="$(paste -sd, - <<<"${config_ns:-${webhook_ns}}")"
if [[ -n "${leftover_ns}" ]]; then
  if [[ "${config_ns}" == "${install_ns}" && ( -z "${webhook_ns}" || "${webhook_ns}" == "${install_ns}" ) ]] \
    && k get secret linkerd-config-overrides -n "${install_ns}" >/dev/null 2>&1; then
    # A CLI install (it stores its values in linkerd-config-overrides) that
    # stopped half way; `linkerd install` now refuses while linkerd-config
    # exists, but `linkerd upgrade` renders the same install from the stored
    # values, certificates included.
    need_cli "finish the unfinished install in namespace ${install_ns}"
    say "finishing the unfinished Linkerd install in namespace ${install_ns} (linkerd upgrade)"
    if ! l5d upgrade --linkerd-namespace "${install_ns}" | k apply -f -; then
      die "could not finish the install in namespace ${install_ns}. Remove it with
    linkerd uninstall --linkerd-namespace ${install_ns} | kubectl delete -f -
  and run this again."
    fi
    wait_ready "${install_ns}"
    exit 0
  fi
  if [[ -n "${config_ns}" ]]; then
    seen="ConfigMap linkerd-config is there"
  else
    seen="the injector's webhook ${webhook} points there"
  fi
  die "a Linkerd control plane in namespace ${leftover_ns} looks unfinished: ${seen},
  but no linkerd-destination Deployment. This script never installs over it.
  Finish it with the tool that started it (helm upgrade, or
    linkerd upgrade --linkerd-namespace ${leftover_ns} | kubectl apply -f -)
  or remove it (linkerd uninstall --linkerd-namespace ${leftover_ns} | kubectl delete -f -),
  then run this again."
fi

# 3. No Linkerd at all: install it.
need_cli "install Linkerd"
version="$(linkerd version --client --short 2>/dev/null || true)"
say "no Linkerd control plane found; installing with the linkerd CLI ${version:-of unknown version}"

# Gateway API CRDs: Linkerd 2.18 and later need them installed beforehand; up
# to 2.17 `linkerd install --crds` brings its own.
minor=""
if [[ "${version}" =~ (stable|enterprise)-2\.([0-9]+) ]]; then
  minor="${BASH_REMATCH[2]}"
elif [[ "${version}" =~ edge-([0-9]+)\.([0-9]+)\. ]]; then
  minor="$(edge_line "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}")"
fi
# The range of the release found; a release newer than this table, or one whose
# version the CLI did not tell, is held to the newest line the table knows.
line="${minor:-${newest_known}}"
if (( line > newest_known )); then
  line="${newest_known}"
fi
if [[ -n "${minor}" && "${minor}" -le 17 ]]; then
  say "Linkerd 2.${minor} ships its own Gateway API CRDs"
elif k get crd httproutes.gateway.networking.k8s.io >/dev/null 2>&1; then
  bundle="$(k get crd httproutes.gateway.networking.k8s.io \
    -o jsonpath='{.metadata.annotations.gateway\.networking\.k8s\.io/bundle-version}')"
  say "Gateway API CRDs present (${bundle:-unknown version}), left as they are"
  read -r gateway_oldest gateway_newest <<<"$(gateway_range "${line}")"
  if [[ -n "${bundle}" ]] && ! printf '%s\n%s\n%s\n' "${gateway_oldest}" "${bundle}" "${gateway_newest}" \
    | sort -V -C; then
    say "warning: Linkerd documents Gateway API ${gateway_oldest} to ${gateway_newest} for Linkerd 2.${line};
  ${bundle} may not work with it (linkerd.io/2/features/gateway-api)"
  fi
else
  gw="${GATEWAY_API_VERSION:-${gateway_default}}"
  say "installing Gateway API ${gw} CRDs"
  k apply --server-side -f \
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/${gw}/standard-install.yaml"
  k wait --for=condition=Established --timeout=60s crd/httproutes.gateway.networking.k8s.io
fi

if k get crd servers.policy.linkerd.io >/dev/null 2>&1; then
  say "Linkerd CRDs present"
else
  say "installing Linkerd CRDs"
  l5d install --crds | k apply -f -
  k wait --for=condition=Established --timeout=60s crd/servers.policy.linkerd.io
fi

say "checking the cluster, then installing the control plane into ${install_ns}"
l5d check --pre --linkerd-namespace "${install_ns}"
l5d install --linkerd-namespace "${install_ns}" | k apply -f -
wait_ready "${install_ns}"
