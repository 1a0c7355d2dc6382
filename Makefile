# Do Not Contact service. `make` = lint + types + tests.
# Two commands a newcomer needs: `make run` and `make test` (both set up what they need).

SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK := deploy/local/stack.sh
CLUSTER := deploy/local/cluster.sh
POSTGRES := deploy/local/postgres.sh
KAFKA_CLUSTER := deploy/local/kafka-cluster.sh
KAFKA_CLUSTER_BOOTSTRAP := 127.0.0.1:19192,127.0.0.1:19193,127.0.0.1:19194
# The local Redis Cluster (make up-cluster): 3 masters; the index reaches it through any node.
export DNC_CLUSTER_PORTS ?= 17000 17001 17002
CLUSTER_URL := redis://127.0.0.1:$(firstword $(DNC_CLUSTER_PORTS))/0
# The integration tier once more, with every index on the cluster. Left out: one test of the
# import jobs that talks to a single Redis directly (its owners know), and the tests that
# kill a private single Redis (test_cluster_node_loss.py does that to a cluster master).
CLUSTER_TEST_ENV := DNC_REDIS_URL=$(CLUSTER_URL) DNC_INDEX__CLUSTER=true
CLUSTER_DESELECT := \
  --deselect tests/integration/test_api_imports.py::test_an_import_whose_instance_stopped_is_reported_failed \
  --deselect tests/integration/test_recovery.py::test_gate_waits_while_redis_is_empty_then_the_index_is_rebuilt \
  --deselect tests/integration/test_metrics.py::test_the_gate_reports_failing_closed_while_redis_is_down_and_loses_nothing

export DNC_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(or $(DNC_KAFKA_PORT),19092)
export DNC_REDIS_URL ?= redis://127.0.0.1:$(or $(DNC_REDIS_PORT),16379)/0
# The local PostgreSQL (make up-postgres) for the list view's PostgreSQL backend; the
# integration tests make a database of their own per test on it.
export DNC_POSTGRES_PORT ?= 15432
export DNC_POSTGRES_URL ?= postgresql://dnc@127.0.0.1:$(DNC_POSTGRES_PORT)/dnc
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all deps up down up-cluster down-cluster up-postgres down-postgres up-kafka-cluster \
        down-kafka-cluster run topics test test-unit test-deploy test-integration test-cluster \
        test-postgres-view \
        test-kafka-cluster test-e2e test-faults lint fmt types schemas bench clean tools helm \
        screenshots

all: lint types test

# --- set-up -------------------------------------------------------------------------------

$(BIN)/python:
	@command -v $(PY) >/dev/null || { echo "Python 3.11+ is required ($(PY) not found)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# The gate's compiled per-message check (native/hotpath, Rust via maturin; README,
# "Performance"): a release build into the virtualenv. Without a Rust compiler the gate uses
# its Python check, which decides alike, and says so at start; rustup's cargo is found too.
# A failed build with cargo present fails `make deps` (never a silent difference); `make deps
# CARGO=` skips the extension on purpose.
HOTPATH := native/hotpath
CARGO := $(or $(shell command -v cargo 2>/dev/null),$(wildcard $(HOME)/.cargo/bin/cargo))
$(VENV)/.native: $(HOTPATH)/Cargo.toml $(HOTPATH)/Cargo.lock $(HOTPATH)/pyproject.toml \
                 $(wildcard $(HOTPATH)/src/*.rs) | $(VENV)/.installed
	@if [ -z "$(CARGO)" ]; then \
	  echo "No Rust compiler (cargo): the gate's check stays in Python (README, Performance)"; \
	else \
	  PATH="$(dir $(CARGO)):$$PATH" $(BIN)/pip install -q --force-reinstall --no-deps \
	    ./$(HOTPATH) && touch $@; \
	fi

deps: $(VENV)/.installed $(VENV)/.native

# Debian packages the tests use: Chromium for the browser tests (not a Playwright download),
# kcat, a Kafka client that is not ours, to produce a STOP the way a partner would, and
# promtool (package prometheus) to check the metrics the roles export and deploy/'s rules.
APT_TOOLS := chromium:chromium kcat:kcat promtool:prometheus
tools:
	@for pair in $(APT_TOOLS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 && continue; \
	  command -v apt-get >/dev/null || { echo "$$cmd is missing and apt-get is not available: install $$pkg"; exit 1; }; \
	  SUDO=$$( [ "$$(id -u)" -ne 0 ] && echo sudo ); \
	  echo "installing Debian package $$pkg"; \
	  $$SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$pkg >/dev/null \
	    || { echo "apt-get install $$pkg failed"; exit 1; }; \
	done
	@# PostgreSQL's server binaries are not on PATH (Debian keeps them per version).
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null || { echo "PostgreSQL is missing and apt-get is not available: install postgresql"; exit 1; }; \
	  SUDO=$$( [ "$$(id -u)" -ne 0 ] && echo sudo ); \
	  echo "installing Debian package postgresql"; \
	  $$SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null \
	    || { echo "apt-get install postgresql failed"; exit 1; }; }

# helm, for the offline chart tests (tests/deploy/test_deploy_files.py). No binary download is
# reachable here, so it is built from the Go module proxy (Go >= 1.26; ~2-3 min once per
# machine, then a no-op).
HELM_VERSION := v3.22.0
HELM_STAMP := .local/bin/.helm-$(HELM_VERSION)

$(HELM_STAMP):
	@command -v go >/dev/null || { echo "Go 1.26+ is needed to build helm for the deploy tests"; exit 1; }
	@echo "building helm $(HELM_VERSION) from the Go module proxy (once per machine)"
	@mkdir -p .local/bin
	GOBIN=$(CURDIR)/.local/bin GOFLAGS=-buildvcs=false go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@touch $@

helm: $(HELM_STAMP)

# One broker cannot replicate: its topics are under-replicated on purpose (dev only).
up: deps
	@$(STACK) up
	@if [ "$${DNC_VIEW__BACKEND:-sqlite}" = postgres ]; then $(POSTGRES) up; fi
	@$(BIN)/dnc topics ensure --allow-under-replicated

down:
	@$(STACK) down
	@$(CLUSTER) down
	@$(POSTGRES) down
	@$(KAFKA_CLUSTER) down

# PostgreSQL on 127.0.0.1:$(DNC_POSTGRES_PORT) (data in .local/postgres), for the list view's
# PostgreSQL backend; `make test` always starts it.
up-postgres: tools
	@$(POSTGRES) up

down-postgres:
	@$(POSTGRES) down

# A 3-master Redis Cluster on 127.0.0.1:17000-17002 beside the stack (data in .local/cluster).
up-cluster: up
	@$(CLUSTER) up

down-cluster:
	@$(CLUSTER) down

# Three Kafka nodes (KRaft, broker + controller each) shaped like production: replication 3,
# min.insync.replicas=2. Brokers 127.0.0.1:19192-19194 (data in .local/kafka-cluster).
up-kafka-cluster: deps
	@$(KAFKA_CLUSTER) up
	@DNC_KAFKA_BOOTSTRAP=$(KAFKA_CLUSTER_BOOTSTRAP) $(BIN)/dnc topics ensure

down-kafka-cluster:
	@$(KAFKA_CLUSTER) down

topics: deps
	@$(BIN)/dnc topics ensure --allow-under-replicated

# Kafka, Redis and every role on localhost; Ctrl-C stops the roles (`make down` the stack).
# DNC_VIEW__BACKEND=postgres: the list view in the local PostgreSQL, kept by `dnc viewwriter`.
run: up
	@echo "Local stack:"; $(STACK) status
	@echo "Roles:"
	@DNC_API__KEYS="$${DNC_API__KEYS:-$$($(BIN)/python deploy/local/dev_keys.py)}" \
	  DNC_API__UNSUBSCRIBE_KEYS="$${DNC_API__UNSUBSCRIBE_KEYS:-$$($(BIN)/python deploy/local/dev_keys.py --unsubscribe)}" \
	  DNC_VIEW__POSTGRES_URL="$${DNC_VIEW__POSTGRES_URL:-$(DNC_POSTGRES_URL)}" \
	  DNC_LOG_JSON=$${DNC_LOG_JSON:-false} DNC_METRICS_PORT=$${DNC_METRICS_PORT:-9400} $(BIN)/dnc dev

# README images (docs/screenshots: the list at desktop width and on a phone, the import
# wizard) from a seeded demo list, against the API `make run` serves (another one:
# DNC_API_URL / DNC_API_KEY). Chromium is Debian's (`make tools`).
screenshots: deps
	$(BIN)/python deploy/local/screenshots.py

# --- checks -------------------------------------------------------------------------------

lint: deps
	$(BIN)/ruff check services tests benchmarks
	$(BIN)/ruff format --check services tests benchmarks
	$(BIN)/lint-imports

fmt: deps
	$(BIN)/ruff format services tests benchmarks
	$(BIN)/ruff check --fix services tests benchmarks

types: deps
	$(BIN)/mypy

schemas: deps
	$(BIN)/dnc schemas write

# Every test: unit, deploy files, integration (real Kafka + Redis, then the API tier and the
# page again on the PostgreSQL list view, then everything again on the Redis Cluster and on
# the three-broker Kafka cluster), browser, and the short fault suite. Plain `pytest`
# collects the same tiers.
test: up up-cluster up-kafka-cluster up-postgres tools helm
	DNC_REQUIRE_PROMTOOL=1 $(BIN)/pytest tests/unit -q
	$(BIN)/pytest tests/deploy -q
	$(BIN)/pytest tests/integration -q -p no:cacheprovider --require-integration
	DNC_TEST_VIEW_BACKEND=postgres $(BIN)/pytest $(VIEW_TESTS) -q -p no:cacheprovider \
	  --require-integration
	$(CLUSTER_TEST_ENV) $(BIN)/pytest tests/integration -q -p no:cacheprovider \
	  --require-integration $(CLUSTER_DESELECT)
	DNC_KAFKA_BOOTSTRAP=$(KAFKA_CLUSTER_BOOTSTRAP) $(BIN)/pytest tests/integration -q \
	  -p no:cacheprovider --require-integration
	$(BIN)/pytest tests/e2e -q -p no:cacheprovider
	$(BIN)/pytest tests/faults -q -p no:cacheprovider -m "not long"

# Pure logic: no services, no helm.
test-unit: deps
	$(BIN)/pytest tests/unit -q

# The deploy files, offline (helm renders the chart).
test-deploy: deps helm
	@$(MAKE) --no-print-directory tools APT_TOOLS=promtool:prometheus
	$(BIN)/pytest tests/deploy -q

test-integration: up up-postgres tools
	$(BIN)/pytest tests/integration -q --require-integration

# The API tier, the CLI (its client) and the page on the PostgreSQL list view: every
# in-process API gets a view writer beside it (tests/kit.py, api_view_writer).
VIEW_TESTS := tests/integration/test_api_*.py tests/integration/test_cli.py tests/e2e
test-postgres-view: up up-postgres tools
	DNC_TEST_VIEW_BACKEND=postgres $(BIN)/pytest $(VIEW_TESTS) -q -p no:cacheprovider \
	  --require-integration

# The integration tier with the index on the local Redis Cluster (the test_cluster_* files
# run only here; they start clusters of their own where they kill or reshard masters).
test-cluster: up-cluster tools
	$(CLUSTER_TEST_ENV) $(BIN)/pytest tests/integration -q -p no:cacheprovider \
	  --require-integration $(CLUSTER_DESELECT)

# The integration tier on the three-broker Kafka cluster (replication 3, min ISR 2).
test-kafka-cluster: up up-kafka-cluster tools
	DNC_KAFKA_BOOTSTRAP=$(KAFKA_CLUSTER_BOOTSTRAP) $(BIN)/pytest tests/integration -q \
	  -p no:cacheprovider --require-integration

test-e2e: up tools
	$(BIN)/pytest tests/e2e -q

# The full fault suite (more rounds); `make test` runs the short version.
test-faults: up
	DNC_FAULT_ROUNDS=$${DNC_FAULT_ROUNDS:-10} $(BIN)/pytest tests/faults -q

# Then the list view on both backends (PostgreSQL in a database of its own, dropped after);
# the issue's size is --rows 10000000 (≈ 40 min here).
bench: up up-postgres
	$(BIN)/python -m benchmarks.run
	$(BIN)/python benchmarks/bench_view.py --rows $${DNC_BENCH_VIEW_ROWS:-1000000} --backend both

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache artifacts
