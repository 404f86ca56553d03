# One entry point for people and CI. Every target installs what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON313 := $(shell scripts/find-python.sh 2>/dev/null)
VENV := .venv
TOOLS := .venv-tools
TRAIN := .venv-train
PY := $(VENV)/bin/python
SAM := $(TOOLS)/bin/sam
# The pyenv shim behind python3.13 (used by `sam build`'s workflow) needs a version selected.
export PYENV_VERSION ?= 3.13.0:3.12.1:3.11.7

.PHONY: help venv tools train-intent lint typecheck validate browser test-unit test-integration test-e2e test-reliability test build run demo \
	bench load replay clean deploy secret verify-token smoke test-fast

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt layers/whatsapp/requirements.txt
	@test -n "$(PYTHON313)" || { scripts/find-python.sh; exit 1; }
	test -x $(PY) || $(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(TOOLS)/.installed: requirements-tools.txt
	@test -n "$(PYTHON313)" || { scripts/find-python.sh; exit 1; }
	test -x $(TOOLS)/bin/python || $(PYTHON313) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	touch $@

$(TRAIN)/.installed: requirements-train.txt layers/whatsapp/requirements.txt
	@test -n "$(PYTHON313)" || { scripts/find-python.sh; exit 1; }
	test -x $(TRAIN)/bin/python || $(PYTHON313) -m venv $(TRAIN)
	$(TRAIN)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-train.txt
	touch $@

venv: $(VENV)/.installed ## Create the project venv (.venv, Python 3.13)
tools: $(TOOLS)/.installed ## Create the SAM CLI venv (.venv-tools)
browser: ## Debian's Chromium for the inbox's browser tests (apt-get install when absent and root)
	scripts/ensure-chromium.sh

# scikit-learn lives in its own venv (.venv-train): the tests and the layer never need it.
train-intent: $(TRAIN)/.installed ## Retrain the intent classifier from tests/data/intent_corpus (writes intent_model.json + .bin)
	$(TRAIN)/bin/python scripts/train_intent.py

lint: venv ## ruff (lint + format check)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: venv ## mypy (strict) over the layer, the functions, local/, bench/ and scripts/
	$(PY) -m mypy

validate: tools ## sam validate --lint (cfn-lint included)
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --region eu-west-1

# One level each (markers in pyproject.toml); `make test` runs them all with the checks.
test-unit: venv ## Unit tests: pure, no network, about 10 seconds (the edit loop)
	$(PY) -m pytest tests/unit -m unit -q

test-integration: venv tools ## Integration tests: real handlers on moto's server, the Graph fake, template.yaml
	$(PY) -m pytest tests/integration -m integration

test-fast: venv tools ## Unit + integration tests: the edit loop before a commit (a few minutes)
	$(PY) -m pytest tests/unit tests/integration -m "unit or integration"

test-e2e: venv tools ## End to end: the local stack, the build, the README's commands
	$(PY) -m pytest tests/e2e -m e2e

test-reliability: venv ## Fuzzing, schemathesis, moto's fidelity, a short replay with faults
	$(PY) -m pytest tests/reliability -m reliability

test: venv tools browser lint typecheck validate ## The whole suite: lint, types, template, all tests
	$(PY) -m pytest

# sam's Python builder drops every .pyc, so Lambda would compile each imported module on every cold start
# (its code directories are read-only). Compile the artifacts once here; unchecked-hash .pyc files do not
# depend on file timestamps, which the zip upload does not keep exactly. See docs/performance.md.
BUILD_DIR ?= .aws-sam/build
build: tools ## sam build (python3.13, arm64), then compile the artifacts to .pyc
	SAM_CLI_TELEMETRY=0 $(SAM) build --build-dir $(BUILD_DIR)
	$(TOOLS)/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash $(BUILD_DIR)

# Deploying: ENV names an environment of samconfig.toml (dev, prod). The scripts run with .venv-tools' Python,
# whose boto3 (the SAM CLI's) is all they need: no AWS CLI. README: Deploy.
ENV ?= dev
PARAMS ?=
DEPLOY_ARGS := --env $(ENV) $(if $(DRY_RUN),--dry-run) $(if $(GUIDED),--guided)
deploy: tools ## Check the parameters and credentials, then sam build + sam deploy (ENV=dev|prod, PARAMS="Name=value ...")
	$(TOOLS)/bin/python scripts/deploy.py $(DEPLOY_ARGS) --params '$(PARAMS)' --sam $(SAM) --build '$(MAKE) --no-print-directory build'

secret: tools ## Put the access token, app secret and verify token into the stack's secret (env or no-echo prompt)
	$(TOOLS)/bin/python scripts/put_secret.py --env $(ENV)

verify-token: tools ## Print the deployed stack's verify token (for Meta's webhook settings)
	@$(TOOLS)/bin/python scripts/put_secret.py --env $(ENV) --show-verify-token

# TO=+972... adds a real template send (TEMPLATE=hello_world LANGUAGE=en_US unless given).
URL ?=
TO ?=
SMOKE_ARGS := --env $(ENV) --url '$(URL)' --to '$(TO)' $(if $(TEMPLATE),--template '$(TEMPLATE)') $(if $(LANGUAGE),--language '$(LANGUAGE)')
smoke: tools ## Check a stack end to end: handshake, signed webhook, /health, read, opt-in send (URL=... or ENV=, TO=+972...)
	$(TOOLS)/bin/python scripts/smoke.py $(SMOKE_ARGS)

# The port is 3000 unless LOCAL_STACK_PORT says otherwise (`make run LOCAL_STACK_PORT=3001`).
run: venv ## Run the whole service locally (no AWS, no Docker)
	$(PY) -m local

demo: venv ## Play a Hebrew-speaking lead against the running `make run`
	$(PY) -m local.demo

bench: venv tools ## Benchmarks (results in docs/performance.md and docs/cost.md)
	$(PY) bench/run_all.py

# Signed webhooks at a fixed rate against a local stack of its own (docs/performance.md); LOAD_ARGS adds options
# (--rate 100, --duration 10, --find-max, --url http://127.0.0.1:3000 for a running `make run`).
LOAD_ARGS ?=
load: venv ## Webhooks at 50/s for 20 s against the local stack: ack p50/p95/p99, errors, replies sent
	$(PY) bench/load.py $(LOAD_ARGS)

# A day of 10,000 webhooks with 10% faults, checked (docs/reliability.md); REPLAY_ARGS adds or overrides options.
REPLAY_ARGS ?=
replay: venv ## Replay a day of webhooks against the local stack with faults; exit 1 if any promise breaks
	$(PY) bench/replay.py --fault-rate 0.1 --visibility-timeout 30 --json .local/replay-report.json $(REPLAY_ARGS)

clean: ## Remove venvs and build output
	rm -rf $(VENV) $(TOOLS) $(TRAIN) .aws-sam .pytest_cache .mypy_cache .ruff_cache
