# PostgreSQL for docker/compose.yaml where no registry serves the official postgres image:
# Debian 12's own PostgreSQL 15 on a Debian base (docker/make-base.sh's), started the way the
# official image starts (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB; data in
# /var/lib/postgresql/data, made on first start; pg_isready for the healthcheck).
#
#   podman build -f docker/postgres.Dockerfile --build-arg BASE=localhost/urbansound-base:bookworm \
#       -t localhost/urbansound-postgres:15 docker
#   POSTGRES_IMAGE=localhost/urbansound-postgres:15 podman-compose -f docker/compose.yaml up -d
ARG BASE=debian:bookworm-slim
FROM ${BASE}

# Debian's package makes a cluster of its own on install: dropped, the entrypoint makes one.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && pg_dropcluster 15 main \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
EXPOSE 5432
# a fast shutdown: the server stops its sessions and writes a checkpoint
STOPSIGNAL SIGINT
ENTRYPOINT ["postgres-entrypoint"]
