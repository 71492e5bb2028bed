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
# Debian-like image with Python 3.11 and pip.)
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# Empty: the CPU wheel; "and-cuda": the GPU one (same tensorflow pin as requirements.txt).
ARG TF_EXTRAS=
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 MPLBACKEND=Agg

# rubberband-cli: muda's time stretch and pitch shift; sox: its dynamic range compression;
# libsndfile1: soundfile's decoder (the wheel bundles one; the system's is its fallback).
RUN apt-get update \
 && apt-get install -y --no-install-recommends rubberband-cli sox libsndfile1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/urbansound
# The repository's pins, unchanged; the extra only adds CUDA wheels to the same tensorflow.
COPY requirements.txt .
RUN pip install -r requirements.txt ${TF_EXTRAS:+"tensorflow[${TF_EXTRAS}]"} \
 && pip install --no-deps muda==0.4.1

COPY setup.py pyproject.toml README.md ./
COPY urbansound ./urbansound
COPY components ./components
COPY pipeline ./pipeline
RUN pip install --no-deps . && python -c "import urbansound.pipeline.cli, urbansound.components.train"

# KFP replaces the entrypoint with its launcher and the component's own command; this one
# is for `docker run IMAGE run ...` by hand.
ENTRYPOINT ["urbansound"]
CMD ["--help"]
