# The image every pipeline component runs in on a cluster (base_image of all components,
# with install_kfp_package=False: kfp is already here, pinned).
#   docker build -t urbansound:latest .
# For a GPU node, build FROM a CUDA base and install tensorflow[and-cuda]==2.21.0 instead:
#   docker build --build-arg TF_PACKAGE='tensorflow[and-cuda]==2.21.0' -t urbansound:gpu .
FROM python:3.11-slim-bookworm

ARG TF_PACKAGE=tensorflow==2.21.0
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 MPLBACKEND=Agg

# rubberband-cli: muda's time stretch and pitch shift; sox: its dynamic range compression.
RUN apt-get update \
 && apt-get install -y --no-install-recommends rubberband-cli sox \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/urbansound
COPY requirements.txt .
RUN sed -i "s|^tensorflow==.*|${TF_PACKAGE}|" requirements.txt \
 && pip install -r requirements.txt \
 && pip install --no-deps muda==0.4.1

COPY setup.py README.md ./
COPY urbansound ./urbansound
COPY components ./components
COPY pipeline ./pipeline
RUN pip install --no-deps . && python -c "import urbansound, components, pipeline"

# Components are started by the KFP launcher with their own command; this is for a quick try.
ENTRYPOINT ["urbansound"]
CMD ["--help"]
