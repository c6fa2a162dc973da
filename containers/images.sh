#!/usr/bin/env bash
# Build the project's images with a real engine: hellolb-server, hellolb-client
# and hellolb-lab (or the ones named), from the repository's own Dockerfiles,
# with the repository root as the build context.
#
#   containers/images.sh [server|client|lab ...]
#   containers/images.sh --base      prints the base image the builds use
#
# ENGINE=podman|docker picks the engine; by default podman where it is
# installed, else docker where its daemon answers. With podman, the engine
# settings come from containers/containers.conf.
#
# The base is the official image that the Dockerfiles name (ARG PYTHON_IMAGE)
# when the engine can pull it. Where no registry is reachable, it is the
# stand-in that containers/standin-base.sh builds once from Debian's packages;
# the build says so. PYTHON_IMAGE=... forces a base. CONTEXT=DIR builds from
# another copy of the repository, TAG=... tags other than latest, NO_CACHE=1
# builds every step again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${ENGINE:-} ]]; then
  if command -v podman >/dev/null; then
    ENGINE=podman
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    ENGINE=docker
  else
    echo "images: no container engine: install podman (apt-get install podman runc)" \
      "or start docker" >&2
    exit 1
  fi
fi
if [[ $ENGINE == podman ]]; then
  export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/containers/containers.conf}
fi

STANDIN_IMAGE=localhost/hellolb-standin-python:3.11-bookworm
declare -A DOCKERFILE=(
  [server]=services/server/Dockerfile
  [client]=services/client/Dockerfile
  [lab]=lab/Dockerfile
)

# The official base, read from the server's Dockerfile; a bare Docker Hub name
# is spelt out, since podman resolves short names only through its own
# registries.conf.
official=$(sed -n 's/^ARG PYTHON_IMAGE=//p' services/server/Dockerfile)
[[ $official == */* ]] || official=docker.io/library/$official

base=${PYTHON_IMAGE:-}
if [[ -z $base ]]; then
  if "$ENGINE" image inspect "$official" >/dev/null 2>&1 ||
    "$ENGINE" pull --quiet "$official" >/dev/null 2>&1; then
    base=$official
  else
    echo "images: $official cannot be pulled; building on the stand-in base" \
      "$STANDIN_IMAGE (containers/standin-base.sh)" >&2
    base=$(containers/standin-base.sh "$ENGINE" "$STANDIN_IMAGE")
  fi
fi

if [[ ${1:-} == --base ]]; then
  echo "$base"
  exit 0
fi
images=("$@")
[[ ${#images[@]} -gt 0 ]] || images=(server client lab)
for name in "${images[@]}"; do
  dockerfile=${DOCKERFILE[$name]:-}
  [[ -n $dockerfile ]] || {
    echo "images: unknown image '$name': expected server, client or lab" >&2
    exit 2
  }
  started=$SECONDS
  # Host networking: the build's pip and uv reach the package index the way
  # the machine does.
  context=${CONTEXT:-.}
  tag=hellolb-$name:${TAG:-latest}
  flags=(--network=host --build-arg "PYTHON_IMAGE=$base")
  [[ ${NO_CACHE:-} != 1 ]] || flags+=(--no-cache)
  # From the context folder itself: podman 4.3 looks for the Dockerfile's own
  # ignore file (lab/Dockerfile.dockerignore) at the -f path taken relative to
  # the context, and silently falls back to the root .dockerignore otherwise.
  (cd "$context" && "$ENGINE" build "${flags[@]}" -f "$dockerfile" -t "$tag" . >&2)
  echo "images: $tag on $base, built in $((SECONDS - started)) s" >&2
done
