# syntax=docker/dockerfile:1
# tideserve operator and activator image (same image, different command):
#   tideserve run        the kopf operator and autoscaler
#   tideserve activator  the request buffer for endpoints at zero
# Build: docker build -t ghcr.io/tideserve/tideserve:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim

# --- build stage: install the package and its dependencies into a venv ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
# Everything pip needs to build the wheel; the rest of the repo stays out
# (.dockerignore), so a test or doc change does not rebuild this layer.
COPY pyproject.toml README.md /src/
COPY operator/ /src/operator/
# Runtime dependencies only: the bench extra (simulator, plots, numpy) is for a
# workstation, not the operator or the activator (the profiling probe speaks Triton's
# HTTP protocol with httpx); importing both entry points proves the runtime set is enough.
# Non-editable install: the runtime image holds no sources beyond site-packages.
# pip compiles bytecode at install time, so a read-only root needs no writes.
RUN /opt/venv/bin/pip install /src \
    && /opt/venv/bin/python -c "import tideserve.controller.main, tideserve.activator.server" \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# --- runtime stage: python plus the venv, nothing else ---
FROM ${PYTHON_IMAGE}
# A passwd entry for the non-root UID (getpass and some libraries look it up).
RUN groupadd --gid 65532 nonroot \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin nonroot
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
# The chart mounts an emptyDir at /tmp: the root filesystem is read-only.
USER 65532:65532
EXPOSE 8080 8081 9090
ENTRYPOINT ["/opt/venv/bin/tideserve"]
CMD ["run"]
