#!/usr/bin/env bash
# Shift the canary scenario's calls: give the canary servers PERCENT of them
# and the stable servers the rest, by editing the two weights of the GRPCRoute
# `server` (k8s/components/canary/route.yaml). Linkerd's proxy in the client
# applies a new weight to the next calls; no pod restarts.
#
#   canary-weight.sh [--context CTX] [--namespace NS] PERCENT
#
#   canary-weight.sh 10     10% of calls to the canary
#   canary-weight.sh 100    every call to the canary
#   canary-weight.sh 0      roll back: every call to the stable servers
#
# The patch first tests that the route's backends are server-stable then
# server-canary, in that order, so it never sets a weight on the wrong one.
# A redeploy (skaffold run/dev, tilt) puts the route back to 100/0.
set -euo pipefail

namespace="grpc-lb-canary"
ctx=()
usage="usage: canary-weight.sh [--context CTX] [--namespace NS] PERCENT (an integer from 0 to 100)"

die() { printf 'canary-weight: %s\n' "$*" >&2; exit 2; }

percent=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --context) [[ $# -ge 2 ]] || die "${usage}"; ctx=(--context "$2"); shift 2 ;;
    --namespace) [[ $# -ge 2 ]] || die "${usage}"; namespace="$2"; shift 2 ;;
    -h|--help) printf '%s\n' "${usage}"; exit 0 ;;
    *) [[ -z "${percent}" ]] || die "${usage}"; percent="$1"; shift ;;
  esac
done
[[ -n "${percent}" ]] || die "${usage}"
# Digits only, then a range check: "010", "+5", "5.0" and "ten" are refused.
if ! [[ "${percent}" =~ ^(0|[1-9][0-9]{0,2})$ ]] || (( percent > 100 )); then
  die "PERCENT is '${percent}'; expected an integer from 0 to 100"
fi
stable=$(( 100 - percent ))

k() { kubectl ${ctx[@]+"${ctx[@]}"} -n "${namespace}" "$@"; }

k patch grpcroute/server --type=json -p "[
  {\"op\": \"test\", \"path\": \"/spec/rules/0/backendRefs/0/name\", \"value\": \"server-stable\"},
  {\"op\": \"test\", \"path\": \"/spec/rules/0/backendRefs/1/name\", \"value\": \"server-canary\"},
  {\"op\": \"replace\", \"path\": \"/spec/rules/0/backendRefs/0/weight\", \"value\": ${stable}},
  {\"op\": \"replace\", \"path\": \"/spec/rules/0/backendRefs/1/weight\", \"value\": ${percent}}
]" >/dev/null
k get grpcroute/server \
  -o jsonpath='{range .spec.rules[0].backendRefs[*]}{.name}={.weight} {end}{"\n"}'
