# urbansound: set-up, run and test.  `make run` and `make test` work on a fresh
# Debian/Ubuntu machine with Python 3.11 (root or sudo for the two apt packages).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: install system-deps test-deps container-deps run test lint compile clean

install: system-deps $(STAMP)

# rubberband-cli (time stretch, pitch shift) and sox (dynamic range compression) for muda.
system-deps:
	@if ! command -v rubberband >/dev/null || ! command -v sox >/dev/null; then \
	  echo "installing rubberband-cli and sox"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rubberband-cli sox; \
	fi

# PostgreSQL for tests/test_postgres.py (the team MLflow server on PostgreSQL): the test
# starts its own server in a temporary folder, so only the package is needed here.
# Debian's chromium for tests/test_ui_browser.py (the MLflow UI rendered in a headless browser).
test-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
	  echo "installing postgresql"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; \
	fi
	@if ! command -v chromium >/dev/null; then \
	  echo "installing chromium"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	fi
	@$(MAKE) --no-print-directory container-deps

# tests/test_containers.py builds the image and runs the pipeline in it (kfp's DockerRunner):
# Debian's podman with runc, debootstrap for the base image, uidmap; podman-compose and the
# CNI dnsname plugin (service names) for docker/compose.yaml's MLflow server. RLIMIT_NOFILE cannot be
# raised in a container on every machine: containers.conf gives containers the engine's own
# limits (default_ulimits = []). The base image (docker/make-base.sh, ≈ 1 min) is made once
# and stays in podman's store; the test's build reuses its layers from run to run.
CONTAINERS_CONF := /etc/containers/containers.conf
container-deps:
	@if ! command -v podman >/dev/null || ! command -v runc >/dev/null || \
	    ! command -v debootstrap >/dev/null || ! command -v newuidmap >/dev/null || \
	    ! command -v podman-compose >/dev/null || [ ! -x /usr/lib/cni/dnsname ]; then \
	  echo "installing podman, runc, debootstrap, uidmap, podman-compose, dnsname"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc debootstrap uidmap \
	    podman-compose golang-github-containernetworking-plugin-dnsname; \
	fi
	@if ! grep -qs '^ *default_ulimits' $(CONTAINERS_CONF); then \
	  echo "$(CONTAINERS_CONF): default_ulimits = []"; \
	  if grep -qs '^\[containers\]' $(CONTAINERS_CONF); then \
	    $(SUDO) sed -i '/^\[containers\]/a default_ulimits = []' $(CONTAINERS_CONF); \
	  else \
	    printf '[containers]\ndefault_ulimits = []\n' | $(SUDO) tee -a $(CONTAINERS_CONF) >/dev/null; \
	  fi; \
	fi
	@if [ "$$(id -u)" = 0 ]; then docker/make-base.sh; \
	else echo "not root: docker/make-base.sh (the test's base image) is left to the test"; fi

# The venv is rebuilt only when the pins or the package metadata change.
$(STAMP): requirements.txt setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt pytest==9.2.0
	# muda's own dependency list would replace soundfile 0.14 with pysoundfile (2017): no deps.
	$(BIN)/pip install -q --no-deps muda==0.4.1
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

run: install
	$(BIN)/urbansound run

test: install test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff (lint + format check) and mypy, configured in pyproject.toml; CI runs this first.
LINT_STAMP := $(VENV)/.lint-installed
$(LINT_STAMP): $(STAMP)
	$(BIN)/pip install -q ruff==0.17.6 mypy==2.4.1
	touch $(LINT_STAMP)

lint: install $(LINT_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

compile: install
	$(BIN)/urbansound compile -o pipeline.yaml

clean:
	rm -rf urbansound-output pipeline.yaml .pytest_cache
