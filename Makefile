PYTHON ?= python3
PIP = $(PYTHON) -m pip install --disable-pip-version-check -q

# llama-cpp-python compiles from source. It is built for AVX2 rather than for this CPU
# (-march=native): some VMs advertise AMX, which ggml then uses, and the process dies on the
# first AMX instruction. pip's own wheel cache ignores build flags, so the build is kept here.
LLAMA := $(shell grep -m1 '^llama-cpp-python==' requirements-local.txt)
LLAMA_CMAKE_ARGS = -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LLAMA_WHEELS = $(HOME)/.cache/chatbot-wheels/$(subst ==,-,$(LLAMA))-avx2

.PHONY: install install-dev run lint test bench

# The bot and the in-process model (what runs with nothing configured), in one resolve so that
# every pin is checked against the others.
install:
	@ls $(LLAMA_WHEELS)/*.whl >/dev/null 2>&1 || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		$(PYTHON) -m pip wheel -q --disable-pip-version-check --no-deps --no-cache-dir -w $(LLAMA_WHEELS) "$(LLAMA)"
	$(PIP) --no-deps $(LLAMA_WHEELS)/*.whl
	$(PIP) -r requirements.txt -r requirements-local.txt

# The web chat's tests drive Debian's chromium (Playwright never downloads a browser here).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# requirements-dev.txt holds the same pins plus the tools, so this only adds; pip check fails on
# any pin that no longer agrees with another package's requirements.
install-dev: install
	$(PIP) -r requirements-dev.txt
	$(PYTHON) -m pip check
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)
	@SUDO="$(SUDO)" bash tests/system/container/install-docker.sh  # tests/system/test_container.py: Docker, Compose v2, debootstrap

run: install
	$(PYTHON) -m bot

# Settings for all four are in pyproject.toml.
lint: install-dev
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy
	lint-imports  # the architecture: [tool.importlinter] in pyproject.toml

test: lint
	$(PYTHON) -m pytest

bench: install-dev
	$(PYTHON) -m bench.discord
	$(PYTHON) -m bench.slack
