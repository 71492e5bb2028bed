# The one image every pipeline component runs in on a cluster (the base_image of all
# components, with install_kfp_package=False: the pinned kfp is already here). It also
# serves the team's MLflow server (docker/compose.yaml): same mlflow, plus psycopg.
#
#   docker/build.sh [REGISTRY/]NAME[:VERSION]     # builds and tags both variants:
#   CPU:  docker build -t urbansound:0.1.0-cpu .
#   GPU:  docker build --build-arg TF_EXTRAS=and-cuda -t urbansound:0.1.0-gpu .
#
# The GPU variant is the same Python base with TensorFlow's `and-cuda` extra, which
# installs the CUDA runtime, cuBLAS and cuDNN that TensorFlow 2.21 was built against as
# pip wheels; the node's NVIDIA driver comes in through the NVIDIA container runtime.
# (The nvidia/cuda images carry Ubuntu's Python, not 3.11: another BASE must be a
# Debian-like image with Python 3.11 and its venv module.)
#
# Where no registry is reachable, docker/make-base.sh makes the base from Debian's own
# packages (debootstrap; Debian's python3 is "externally managed", hence the venv below,
# used with both bases):  BASE=localhost/urbansound-base:bookworm docker/build.sh
#
# Layers, least to most often changed: system packages, the venv, the pinned requirements
# (minutes), the package's metadata, its code (a code change rebuilds in seconds).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 MPLBACKEND=Agg LANG=C.UTF-8 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH

# rubberband-cli: muda's time stretch and pitch shift; sox: its dynamic range compression;
# libsndfile1: soundfile's decoder (the wheel bundles one; the system's is its fallback).
RUN apt-get update \
 && apt-get install -y --no-install-recommends rubberband-cli sox libsndfile1 \
 && rm -rf /var/lib/apt/lists/*
# Every `python3` and `pip` below and in KFP's task commands is the venv's (PATH);
# /work: the working directory of `docker run IMAGE ...`, writable by any user (--user).
RUN python3 -m venv /opt/venv && mkdir -m 1777 /work

# The sources live in src/, never in a task's working directory: `python3 -m` puts the
# working directory first on sys.path, where urbansound/ would hide the installed package.
WORKDIR /opt/urbansound/src
# A CA bundle for pip where the registry is reached through a TLS-inspecting proxy (a
# podman build mounts the host's: docker/build.sh does); empty: pip's own.
ARG PIP_CERT=
# Empty: the CPU wheel; "and-cuda": the GPU one (same tensorflow pin as requirements.txt).
# Declared here, so that both variants share the layers above.
ARG TF_EXTRAS=
# The repository's pins, unchanged; the extra only adds CUDA wheels to the same tensorflow.
COPY requirements.txt .
RUN pip install -r requirements.txt ${TF_EXTRAS:+"tensorflow[${TF_EXTRAS}]"} \
 && pip install --no-deps muda==0.4.1

COPY setup.py pyproject.toml README.md ./
COPY urbansound ./urbansound
COPY components ./components
COPY pipeline ./pipeline
# The venv's setuptools (pinned) builds it: no download, so a code change costs seconds.
RUN pip install --no-deps . --no-build-isolation && rm -rf build ./*.egg-info \
 && cd / && python3 -c "import urbansound.pipeline.cli, urbansound.components.train"
# What the image was built from (docker/build.sh passes it; `run --runner docker` compares
# it with the checkout's, pipeline/containers.py): last, so it costs no other layer.
ARG SOURCE_DIGEST=
LABEL org.urbansound.source-digest=${SOURCE_DIGEST}
WORKDIR /work

# KFP replaces the entrypoint with its launcher and the component's own command; this one
# is for `docker run IMAGE run ...` by hand.
ENTRYPOINT ["urbansound"]
CMD ["--help"]
