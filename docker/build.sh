#!/usr/bin/env bash
# Build and tag the project image in both variants from the repository's Dockerfile:
#   docker/build.sh [IMAGE]          IMAGE defaults to urbansound:<package version>
# gives IMAGE-cpu and IMAGE-gpu (e.g. registry.example.com/urbansound:0.1.0-cpu / -gpu).
# PUSH=1 pushes both. Extra arguments after IMAGE go to every `docker build`.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^ *version="\([^"]*\)".*/\1/p' setup.py)
image=${1:-urbansound:${version}}
shift || true
case "${image##*/}" in
  *:*) ;;                       # a tag was given
  *) image="${image}:${version}" ;;
esac

docker build --build-arg TF_EXTRAS= -t "${image}-cpu" "$@" .
docker build --build-arg TF_EXTRAS=and-cuda -t "${image}-gpu" "$@" .
echo "built ${image}-cpu and ${image}-gpu"
if [ "${PUSH:-0}" = 1 ]; then
  docker push "${image}-cpu"
  docker push "${image}-gpu"
fi
