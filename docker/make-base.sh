#!/usr/bin/env bash
# A base image for the Dockerfile made from Debian's own packages, for a machine that
# reaches apt and PyPI but no container registry (no python:3.11-slim-bookworm to pull):
#
#   docker/make-base.sh [IMAGE]      IMAGE defaults to localhost/urbansound-base:bookworm
#   BASE=localhost/urbansound-base:bookworm docker/build.sh
#
# debootstrap's minbase of Debian 12 (bookworm), whose python3 is Python 3.11, plus
# python3-venv (the Dockerfile makes a venv: Debian's python3 is "externally managed")
# and ca-certificates, imported as a local image with podman (or docker). An image
# already there is kept (FORCE=1 makes it again). Root only (debootstrap, chroot);
# ≈ 70-120 s and ≈ 250 MB. MIRROR=URL picks the Debian mirror (default deb.debian.org).
set -euo pipefail

image=${1:-localhost/urbansound-base:bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}

if [ -n "${ENGINE:-}" ]; then
  engine=$ENGINE
elif command -v podman >/dev/null; then
  engine=podman
elif command -v docker >/dev/null; then
  engine=docker
else
  echo "docker/make-base.sh: neither podman nor docker found (Debian: apt-get install podman runc)" >&2
  exit 2
fi
if [ "${FORCE:-0}" != 1 ] && "$engine" image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image exists (FORCE=1 makes it again)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "docker/make-base.sh: debootstrap needs root (sudo $0 $*)" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null; then
  echo "docker/make-base.sh: debootstrap not found (Debian: apt-get install debootstrap)" >&2
  exit 2
fi

rootfs=$(mktemp -d /var/tmp/urbansound-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm (minbase + python3, python3-venv, ca-certificates) from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -20 "$rootfs.log" >&2
  echo "docker/make-base.sh: debootstrap failed (full log: $rootfs.log)" >&2
  exit 1
}
rm -f "$rootfs.log"
# The security updates too (the Dockerfile's apt-get update reads this file).
echo "deb http://deb.debian.org/debian-security bookworm-security main" \
  >>"$rootfs/etc/apt/sources.list"
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/tmp/*
chroot "$rootfs" python3 -c "import sys, venv; assert sys.version_info[:2] == (3, 11), sys.version"

tar -C "$rootfs" -c . | "$engine" import \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "made $image ($(chroot "$rootfs" python3 --version), Debian $(cat "$rootfs/etc/debian_version"))"
