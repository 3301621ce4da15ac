# Log pipeline: every command a person runs twice.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed
STAGE ?= local
export PYTHONPATH := $(CURDIR)

.DEFAULT_GOAL := help
.PHONY: help install test test-fast lint format clean

help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv with runtime and development dependencies

$(STAMP): requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

test: install ## lint, then run every test (unit, integration, end-to-end)
	$(BIN)/ruff check .
	$(PYTHON) -m pytest -n 2 -q

test-fast: install ## unit and integration tests only
	$(PYTHON) -m pytest -q -m "not e2e" tests/unit tests/integration

lint: install ## ruff
	$(BIN)/ruff check .

format: install ## ruff --fix and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove caches, generated data and results
	rm -rf .pytest_cache .ruff_cache .hypothesis .bench-cache demo-data
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
