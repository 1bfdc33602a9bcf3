# loss-service, CPU by default.
#
#   docker build -t loss-service .
#   docker run -p 8000:8000 loss-service
#
# Build args:
#   BASE_IMAGE       python:3.11-slim; any image with python3 >= 3.11 and venv, or a CUDA
#                    runtime image (python3 and venv are then installed from its apt sources)
#   TORCH_VERSION    torch release, installed alone in its own layer
#   TORCH_INDEX_URL  where torch comes from: PyTorch's CPU wheel index by default (PyPI's
#                    torch is the multi-GB CUDA build); a CUDA index for the CUDA image; empty
#                    for pip's own index and PIP_FIND_LINKS
#   PIP_FIND_LINKS   a folder of wheels mounted into the build, read by pip
# Build secret pip_cert (optional): a CA bundle for pip behind a TLS-intercepting proxy; it is
# mounted only while pip runs and never stored in a layer.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# A venv: Debian's and Ubuntu's python3 are externally managed (PEP 668).
RUN set -eu; \
    if ! python3 -m venv --help >/dev/null 2>&1; then \
        apt-get update; \
        apt-get install -y --no-install-recommends python3 python3-venv ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/venv

# Declared after the venv step, so that changing them keeps that layer.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=""

RUN --mount=type=secret,id=pip_cert \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION}"

# The dependencies, read from pyproject.toml at the versions constraints.txt pins (`make lock`),
# in a layer of their own: a change to the source does not reinstall them.
COPY pyproject.toml constraints.txt /src/
RUN --mount=type=secret,id=pip_cert \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt; \
    pip install -c /src/constraints.txt -r /tmp/requirements.txt; \
    rm /tmp/requirements.txt

COPY README.md /src/README.md
COPY service /src/service
RUN --mount=type=secret,id=pip_cert \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    PIP_CONSTRAINT=/src/constraints.txt pip install --no-deps /src; \
    rm -rf /src

RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
USER 10001:10001
WORKDIR /tmp

ENV LOSS_SERVICE_HOST=0.0.0.0 \
    LOSS_SERVICE_PORT=8000 \
    LOSS_SERVICE_GRPC_PORT=8001 \
    LOSS_SERVICE_PROBE_PORT=8002
# 8000: the service; 8001: the service over gRPC; 8002: health probes and metrics, with
# connections of their own.
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8002/healthz', timeout=2).status != 200)"]
CMD ["loss-service", "serve"]
