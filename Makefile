# LiveLedger developer commands. `make demo` and `make test` are the two a new user needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help install up down status serve stop demo test test-fast test-cluster lint bench load chaos migrate topics

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## create .venv, install Python deps, Redis (apt) and the Kafka jars (Maven)
	@bash devstack/install.sh

# `make up CLUSTER=1` also starts the 3-node Kafka cluster on :19092-19094 (docs/operations.md "Kafka cluster").
CLUSTER ?=

up: install ## start Kafka, Redis and ClickHouse (chDB dev server) on 127.0.0.1; idempotent; CLUSTER=1: + 3-broker Kafka
	@CLUSTER="$(CLUSTER)" bash devstack/up.sh

down: ## stop the dev services and the Kafka cluster if it runs (data is kept in .devstack/)
	@bash devstack/down.sh

status: ## show which dev services and app processes run, their metrics ports and /readyz
	@bash devstack/status.sh

migrate: up ## create Kafka topics and apply ClickHouse migrations
	@$(PY) -m liveledger.cli topics create
	@$(PY) -m liveledger.cli migrate

serve: migrate ## start the application processes in the background (logs in .devstack/logs)
	@bash devstack/serve.sh

stop: ## stop the application processes
	@bash devstack/stop.sh

demo: serve ## the stack, all services, a simulated live event, and the dashboard URLs
	@bash devstack/demo.sh

# `make test` leaves out the `cluster` tests (their own 3-broker Kafka / Redis Cluster): `make test-cluster`.
# A -m in PYTEST_ARGS replaces the default selection.
test: up ## install, start the stack, run the whole test suite (but the cluster tests)
	@rc=0; $(PY) -m pytest -m "not cluster" $(PYTEST_ARGS) || rc=$$?; \
	if [ -n "$$PYTEST_RC_FILE" ]; then echo $$rc > "$$PYTEST_RC_FILE"; fi; \
	if [ $$rc -eq 5 ]; then echo "pytest ran no tests" >&2; fi; exit $$rc

test-cluster: up ## the cluster tests: pipeline on its own 3-broker Kafka (one killed) and Redis Cluster (~3-4 min)
	@rc=0; $(PY) -m pytest -m cluster $(PYTEST_ARGS) || rc=$$?; \
	if [ -n "$$PYTEST_RC_FILE" ]; then echo $$rc > "$$PYTEST_RC_FILE"; fi; \
	if [ $$rc -eq 5 ]; then echo "pytest ran no tests" >&2; fi; exit $$rc

chaos: up ## fault tests only: kill -9 / SIGSTOP of every component, AOF loss (docs/chaos.md; ~7 min)
	@$(PY) -m pytest -m chaos

test-fast: ## unit tests only (no services)
	@$(PY) -m pytest -m "not kafka and not redis and not clickhouse and not e2e"

lint: ## ruff + mypy
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy .

bench: serve ## benchmarks beside their baselines -> bench/out/results.json
	@$(PY) -m bench

load: serve ## Locust headless on the hot path with pass/fail thresholds
	@bash loadtests/run.sh
