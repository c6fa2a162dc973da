#!/usr/bin/env bash
# The stand-in base image, for machines that cannot pull the official
# python:3.11.14-slim-bookworm from a registry.
#
# It is the same Debian release (bookworm) with Debian's own python3 (3.11.2,
# not 3.11.14) made into a virtual environment at /usr/local, so that `python`
# and `pip` are on the PATH where the official image has them. Built once from
# Debian's package mirror with debootstrap, then kept: the root file system as
# a tar under .cache/containers/ and the image in the engine's store.
#
#   containers/standin-base.sh ENGINE IMAGE     prints IMAGE once it exists
set -euo pipefail
cd "$(dirname "$0")/.."

engine=${1:?usage: standin-base.sh ENGINE IMAGE}
image=${2:?usage: standin-base.sh ENGINE IMAGE}
cache=.cache/containers
rootfs_tar=$cache/bookworm-minbase.tar
rootfs_image=localhost/hellolb-standin-rootfs:bookworm

if "$engine" image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

mkdir -p "$cache"
if [[ ! -s $rootfs_tar ]]; then
  command -v debootstrap >/dev/null || {
    echo "standin-base: debootstrap is missing (apt-get install debootstrap)" >&2
    exit 1
  }
  work=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "standin-base: debootstrap bookworm into $work (a few minutes)" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
  }
  # The machine's CA bundle, so that pip and uv inside a build trust the same
  # authorities (a TLS-inspecting proxy included) as the machine does.
  if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
    cp /etc/ssl/certs/ca-certificates.crt "$work/root/etc/ssl/certs/ca-certificates.crt"
  fi
  rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
  tar -C "$work/root" --numeric-owner -cf "$rootfs_tar.part" .
  mv "$rootfs_tar.part" "$rootfs_tar"
  rm -rf "$work"
  trap - EXIT
fi

"$engine" import "$rootfs_tar" "$rootfs_image" >/dev/null
"$engine" build --quiet --network=host --build-arg "ROOTFS=$rootfs_image" \
  -f containers/standin-base.Dockerfile -t "$image" containers >/dev/null
echo "$image"
