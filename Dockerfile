# syntax=docker/dockerfile:1
#
# edgeshield container image (docs/deploy/README.md).
#
#   docker build -t edgeshield:dev .
#   docker run --rm -p 8080:8080 edgeshield:dev          # the demo, as `make run` serves it
#   docker run --rm -p 8080:8080 -v "$PWD/my.toml:/etc/edgeshield/edgeshield.toml:ro" \
#       -e EDGESHIELD_ORIGINS__MEDIA__SECRET_ACCESS_KEY=... edgeshield:dev
#
# Both stages use the same base, so the virtual environment built in the first one runs
# unchanged in the second (its python links to the same /usr/local/bin/python3.11).
# Slim (glibc), not Alpine: every dependency comes as a manylinux wheel, libvips inside
# pyvips-binary included, so nothing compiles and no system package is installed. For
# repeatable builds pin the digest too (python:3.11-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the wheel build needs (the same list .dockerignore lets in).
COPY pyproject.toml README.md ./
COPY config/ config/
COPY proxy/ proxy/
COPY routing/ routing/
COPY transforms/ transforms/
COPY .ci/container-install.sh /usr/local/lib/edgeshield/container-install.sh
# The install steps are one script, run by the test suite too
# (tests/e2e/test_container_install.py). The cache mount keeps downloads out of
# the layer and speeds up rebuilds.
RUN --mount=type=cache,target=/root/.cache/pip \
    sh /usr/local/lib/edgeshield/container-install.sh /src /opt/edgeshield


FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="edgeshield" \
      org.opencontainers.image.description="Edge delivery proxy and origin shield for media" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid: Kubernetes can only verify runAsNonRoot for a numeric USER,
# and volumes can be prepared for it (fsGroup, chown) without looking inside the image.
# (--no-log-init: a high uid would otherwise grow /var/log/lastlog to a sparse giant.)
RUN groupadd --gid 10001 edgeshield \
    && useradd --no-log-init --uid 10001 --gid edgeshield --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin edgeshield

# Code and configuration stay owned by root, so the server cannot modify them; the only
# writable place it gets is the disk tier's directory (mount a volume there).
COPY --from=builder /opt/edgeshield /opt/edgeshield

# The config file: mount your own over /etc/edgeshield/edgeshield.toml (or the folder);
# EDGESHIELD_* variables override single fields (docs/configuration.md). Inside a
# container the server must listen on every interface, whatever the file says; set
# EDGESHIELD_SERVER__HOST to something else at `docker run` to change that.
ENV PATH=/opt/edgeshield/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EDGESHIELD_CONFIG=/etc/edgeshield/edgeshield.toml \
    EDGESHIELD_SERVER__HOST=0.0.0.0
COPY config/examples/demo.toml /etc/edgeshield/edgeshield.toml
WORKDIR /srv/edgeshield
# The demo media for the default config (its root is "var/demo", relative to WORKDIR),
# made at build time so the container also runs with a read-only root file system.
RUN edgeshield demo --out var/demo \
    && install -d -o edgeshield -g edgeshield -m 0750 /var/cache/edgeshield

USER 10001:10001
EXPOSE 8080
# uvicorn drains on SIGTERM (finishes in-flight responses, up to 5 s), then exits.
STOPSIGNAL SIGTERM
# The slim base has no curl or wget: ask /healthz with the interpreter that is there
# anyway. The port follows EDGESHIELD_SERVER__PORT (set the port that way, not only in
# the file, when it is not 8080). Kubernetes ignores this; it has its own probes.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('EDGESHIELD_SERVER__PORT', '8080'), timeout=2)"]

ENTRYPOINT ["edgeshield"]
CMD ["serve"]
