# Escalation Mode — developer and CI entry points (GNU make).
#
#   make run     install, then run Redis + mail sink + web + worker + beat locally
#   make test    install, then run the whole test suite (real Redis/SMTP/PostgreSQL)
#   make lint    ruff check and format, import-linter's layer contracts
#   make bench   benchmarks (bench/run_all.py)
#   make drills  failure drills (bench/drills.py)
#   make clean   remove local state and caches (var/, caches); distclean also .venv, node_modules

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP_STAMP := $(VENV)/.requirements.stamp
NODE_STAMP := node_modules/.npm-ci.stamp

# Extra arguments for pytest, e.g.  make test PYTEST_ARGS="-k claim -x"
PYTEST_ARGS ?=

.PHONY: help install run test test-three-roles lint format bench drills clean distclean postgres postgres-stop

help:
	@echo "make run      start the app locally (http://127.0.0.1:5000, PORT overrides)"
	@echo "make test     run the test suite (PYTEST_ARGS='...' to pass options)"
	@echo "make lint     ruff check and format, layer contracts (import-linter)"
	@echo "make format   ruff format + ruff check --fix"
	@echo "make bench    run benchmarks;  make drills  run failure drills"
	@echo "make install  create .venv and install Python and npm dependencies"
	@echo "make clean    remove var/ and caches;  make distclean  also .venv and node_modules"

# ---------------------------------------------------------------- install

$(PY):
	@test -n "$(PYTHON_BOOT)" || { echo "Python 3.11 (python3.11 or python3) is required" >&2; exit 1; }
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when a requirements file changed since the last install.
$(PIP_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

NODE_DEPS :=
ifneq ($(wildcard package.json),)
NODE_DEPS := $(NODE_STAMP)
endif

# npm ci again whenever package.json or the lock file is newer than the last install.
$(NODE_STAMP): package.json $(wildcard package-lock.json)
	@command -v npm >/dev/null || { echo "npm (Node.js) is required for the page assets" >&2; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

install: $(PIP_STAMP) $(NODE_DEPS)

# ---------------------------------------------------------------- run

run: install
	$(PY) scripts/run_local.py

# ---------------------------------------------------------------- test

# A throwaway PostgreSQL cluster of this run's own (a free port, a fresh data directory,
# removed afterwards) when its binaries exist; see devstack/with_postgres.py.
# pytest's exit code is passed on as is: 5 ("no tests collected") fails the build too.
test: install
	@rc=0; $(PY) -m devstack.with_postgres $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; fi; \
	exit "$$rc"

# The named flows again with every stack on the three PostgreSQL roles (row security
# enforced): sign-in, tokens, sockets, reminders, the rollup, PSA callbacks, the claim race.
THREE_ROLE_FLOWS = tests/integration/test_security_stack.py tests/integration/test_unclaimed_steps.py \
	tests/integration/test_stack_smoke.py tests/e2e/test_security_pages.py tests/e2e/test_sso_flow.py \
	tests/e2e/test_handover_flow.py tests/e2e/test_psa_flow.py \
	tests/models/test_claim_race.py tests/workers/test_rollup_task.py tests/psa/test_notes_in_the_psa.py

test-three-roles:
	$(MAKE) test STACK_DATABASE=three_roles PYTEST_ARGS="$(THREE_ROLE_FLOWS) -k 'not sqlite'"

postgres:
	@scripts/test_postgres.sh

postgres-stop:
	@scripts/test_postgres.sh stop

# ---------------------------------------------------------------- quality

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(PY) scripts/function_lengths.py
	$(BIN)/vulture models web workers adapters --min-confidence 80

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# ---------------------------------------------------------------- bench / drills

bench: install
	@if [ -f bench/run_all.py ]; then $(PY) bench/run_all.py; \
	else echo "bench: not built yet (bench/run_all.py does not exist)"; fi

drills: install
	@if [ -f bench/drills.py ]; then $(PY) bench/drills.py; \
	else echo "drills: not built yet (bench/drills.py does not exist)"; fi

# ---------------------------------------------------------------- clean

clean:
	rm -rf var/ test-artifacts/ .pytest_cache/ .ruff_cache/ .hypothesis/ dump.rdb
	find . -path ./.venv -prune -o -path ./node_modules -prune -o \
		-type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	-scripts/test_postgres.sh destroy
	rm -rf $(VENV) node_modules
