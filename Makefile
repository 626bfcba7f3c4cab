# Everyday commands. CI (.ci/run) calls `make test`, the same target humans use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help install run test test-fast e2e check lint bench server serve stop status api clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install technic-ml (editable) with dev extras

run: $(STAMP) ## Run the main job on the configured market data (embedded sample by default)
	$(BIN)/technic-ml run

test: $(STAMP) ## Run the whole test suite (slow and end-to-end tests included; installs chromium if missing)
	@scripts/ensure-chromium.sh
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## The suite without the slow and end-to-end tests
	$(BIN)/python -m pytest -m "not slow and not e2e"

e2e: $(STAMP) ## Only the end-to-end test (real Prefect server, served deployments, UI screenshot)
	@scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -m e2e

server: $(STAMP) ## Prefect server on 127.0.0.1:4200 in the background (PID file in .run/, waits for health)
	scripts/services.sh server

serve: $(STAMP) ## Serve every deployment with its schedule to that server (background)
	scripts/services.sh serve

stop: ## Stop what server/serve started (deployments first, then the server)
	scripts/services.sh stop

status: ## Whether the server and the deployments are running
	scripts/services.sh status

api: $(STAMP) ## The prediction API on http://127.0.0.1:8000 (foreground; docs at /docs)
	$(BIN)/technic-ml api

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: lint test ## Lint, then test

bench: $(STAMP) ## Run the benchmarks and print their figures
	$(BIN)/python bench/run_all.py

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .run .pytest_cache .ruff_cache .hypothesis *.egg-info
