#!/usr/bin/env bash
# Make sure the current cluster runs a ready Linkerd control plane, installing
# only what is missing. Used by `skaffold run -p linkerd` (deploy hook), by the
# Tiltfile (linkerd scenario) and by the end-to-end check. Safe to run again.
#
# The scenario's own namespace is called `linkerd`, which is also Linkerd's
# default control-plane namespace. The control-plane namespace is labelled to
# opt out of proxy injection, so the demo pods would never be meshed there: the
# control plane goes to LINKERD_NAMESPACE (default linkerd-system) instead.
#
# Environment:
#   LINKERD_NAMESPACE    control-plane namespace (default linkerd-system)
#   GATEWAY_API_VERSION  Gateway API release to install when its CRDs are absent
#                        (default: v1.2.1 for Linkerd 2.18, v1.4.0 otherwise)
#   LINKERD_WAIT         how long `linkerd check` may wait (default 5m)
#   SKAFFOLD_KUBE_CONTEXT  set by Skaffold; used as the kube context if present
set -euo pipefail

cp_ns="${LINKERD_NAMESPACE:-linkerd-system}"
wait_for="${LINKERD_WAIT:-5m}"
ctx=()
if [[ -n "${SKAFFOLD_KUBE_CONTEXT:-}" ]]; then
  ctx=(--context "${SKAFFOLD_KUBE_CONTEXT}")
fi

say() { printf 'ensure-linkerd: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# ${a[@]+"${a[@]}"} expands an empty array safely under `set -u` on old bash.
k() { kubectl ${ctx[@]+"${ctx[@]}"} "$@"; }
l5d() { linkerd ${ctx[@]+"${ctx[@]}"} "$@"; }

command -v kubectl >/dev/null 2>&1 || die "kubectl not found on PATH."
if ! command -v linkerd >/dev/null 2>&1; then
  die "the linkerd CLI is not on PATH. Install it (see the README, 'Prerequisites':
  curl --proto '=https' --tlsv1.2 -sSfL https://run.linkerd.io/install-edge | sh
  export PATH=\"\$HOME/.linkerd2/bin:\$PATH\") and run this again."
fi

if [[ "${cp_ns}" == "linkerd" ]]; then
  die "LINKERD_NAMESPACE must not be 'linkerd': that is the scenario's namespace."
fi
if [[ "$(k get namespace linkerd -o jsonpath='{.metadata.labels.linkerd\.io/is-control-plane}' 2>/dev/null || true)" == "true" ]]; then
  die "a Linkerd control plane already lives in namespace 'linkerd', which this
  project uses for the scenario itself (and pods there are never injected).
  Use a fresh cluster (make kind-down kind-up) or move that control plane."
fi

version="$(linkerd version --client --short 2>/dev/null || true)"
say "linkerd CLI ${version:-of unknown version}, control plane namespace ${cp_ns}"

# Gateway API CRDs: Linkerd 2.18 and later need them installed beforehand;
# up to 2.17 `linkerd install --crds` brings its own.
minor=""
if [[ "${version}" =~ (stable|enterprise)-2\.([0-9]+) ]]; then
  minor="${BASH_REMATCH[2]}"
fi
if [[ -n "${minor}" && "${minor}" -le 17 ]]; then
  say "Linkerd 2.${minor} ships its own Gateway API CRDs"
elif k get crd httproutes.gateway.networking.k8s.io >/dev/null 2>&1; then
  bundle="$(k get crd httproutes.gateway.networking.k8s.io \
    -o jsonpath='{.metadata.annotations.gateway\.networking\.k8s\.io/bundle-version}')"
  say "Gateway API CRDs present (${bundle:-unknown version})"
else
  default_gw="v1.4.0"
  if [[ "${minor}" == "18" ]]; then
    default_gw="v1.2.1"
  fi
  gw="${GATEWAY_API_VERSION:-${default_gw}}"
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

if k get deployment linkerd-destination -n "${cp_ns}" >/dev/null 2>&1; then
  say "Linkerd control plane present in ${cp_ns}"
else
  say "checking the cluster, then installing the control plane into ${cp_ns}"
  l5d check --pre --linkerd-namespace "${cp_ns}"
  l5d install --linkerd-namespace "${cp_ns}" | k apply -f -
fi

say "waiting for the control plane (up to ${wait_for})"
l5d check --linkerd-namespace "${cp_ns}" --wait "${wait_for}"
say "Linkerd is ready"
