#!/usr/bin/env bash
# Build and tag the project image in both variants from the repository's Dockerfile:
#   docker/build.sh [IMAGE]          IMAGE defaults to urbansound:<package version>
# gives IMAGE-cpu and IMAGE-gpu (e.g. registry.example.com/urbansound:0.1.0-cpu / -gpu).
# PUSH=1 pushes both. Extra arguments after IMAGE go to every build.
#   VARIANTS="cpu"   builds only these variants (default "cpu gpu")
#   BASE=IMAGE       another base (--build-arg BASE): e.g. docker/make-base.sh's
#                    localhost/urbansound-base:bookworm where no registry is reachable
#   ENGINE=podman    the build tool; default docker when its daemon answers (podman when
#                    that daemon is podman's Docker API), else podman
# Each image is labelled with the digest of the code it holds (org.urbansound.source-digest,
# pipeline/containers.py), which `urbansound run --runner docker` compares with the checkout.
# With podman the build mounts the host's CA bundle for pip (PIP_CERT): a registry reached
# through a TLS-inspecting proxy needs it, and it is harmless elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^ *version="\([^"]*\)".*/\1/p' setup.py)
image=${1:-urbansound:${version}}
shift || true
case "${image##*/}" in
  *:*) ;;                       # a tag was given
  *) image="${image}:${version}" ;;
esac

engine=${ENGINE:-}
if [ -z "$engine" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
    # podman's Docker API behind DOCKER_HOST: build with podman itself (the same images)
    if command -v podman >/dev/null \
      && docker version --format '{{range .Server.Components}}{{.Name}} {{end}}' 2>/dev/null \
      | grep -q Podman; then
      engine=podman
    fi
  elif command -v podman >/dev/null; then
    engine=podman
  elif command -v docker >/dev/null; then
    engine=docker               # no daemon answers: let docker say so
  else
    echo "docker/build.sh: neither docker nor podman found (Debian: apt-get install podman runc)" >&2
    exit 2
  fi
fi

common=()
if [ -n "${BASE:-}" ]; then
  common+=(--build-arg "BASE=${BASE}")
fi
digest=$(python3 pipeline/containers.py source-digest . 2>/dev/null || true)
if [ -n "$digest" ]; then
  common+=(--build-arg "SOURCE_DIGEST=${digest}")
fi
if [ "$engine" = podman ]; then
  ca=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
  common+=(--network host)
  if [ -f "$ca" ]; then
    common+=(--volume "${ca}:/etc/ssl/host-ca.crt:ro" --build-arg PIP_CERT=/etc/ssl/host-ca.crt)
  fi
fi

built=()
for variant in ${VARIANTS:-cpu gpu}; do
  case "$variant" in
    cpu) extras= ;;
    gpu) extras=and-cuda ;;
    *) echo "docker/build.sh: unknown variant '$variant' (VARIANTS: cpu, gpu)" >&2; exit 2 ;;
  esac
  "$engine" build --build-arg TF_EXTRAS=${extras} "${common[@]}" -t "${image}-${variant}" "$@" .
  built+=("${image}-${variant}")
done
echo "built ${built[*]} with ${engine}"
if [ "${PUSH:-0}" = 1 ]; then
  for tag in "${built[@]}"; do
    "$engine" push "$tag"
  done
fi
