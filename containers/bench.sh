#!/usr/bin/env bash
# Image figures: each image's size, what the project's own layers add over the
# base, a cold build (every step again, dependencies downloaded) and a rebuild
# after a one-line .py edit (the cache kept). Builds from a copy of the
# repository under .cache/containers/, so the checkout is never edited.
#
#   containers/bench.sh [server|client|lab ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export ENGINE=${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
[[ $ENGINE != podman ]] || export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/containers/containers.conf}

declare -A EDIT=(
  [server]=services/server/src/hello_server/servicer.py
  [client]=services/client/src/hello_client/app.py
  [lab]=lab/src/hellolb_lab/view.py
)
mkdir -p .cache/containers
context=$(mktemp -d .cache/containers/bench.XXXXXX)
trap 'rm -rf "$context"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$context" 2>/dev/null || true

seconds() { local started=$SECONDS; "$@" 2>/dev/null; echo $((SECONDS - started)); }
size() { "$ENGINE" image inspect --format '{{.Size}}' "$1"; }
mb() { echo $(($1 / 1000000)); }

images=("$@")
[[ ${#images[@]} -gt 0 ]] || images=(server client lab)
base=$(containers/images.sh --base 2>/dev/null) # it exists before anything is timed
echo "base: $base, $(mb "$(size "$base")") MB"
printf '%-8s %10s %14s %10s %14s\n' image "size MB" "own layers MB" "cold s" ".py rebuild s"
for name in "${images[@]}"; do
  tag=bench-$$
  cold=$(seconds env CONTEXT="$context" TAG=$tag NO_CACHE=1 containers/images.sh "$name")
  echo "# edited by containers/bench.sh" >>"$context/${EDIT[$name]}"
  warm=$(seconds env CONTEXT="$context" TAG=$tag containers/images.sh "$name")
  total=$(size "hellolb-$name:$tag")
  own=$((total - $(size "$base")))
  printf '%-8s %10s %14s %10s %14s\n' "$name" "$(mb "$total")" "$(mb "$own")" "$cold" "$warm"
  "$ENGINE" rmi "hellolb-$name:$tag" >/dev/null
done
