# Meta-Agent FinOps — every command the README gives.
# The first target run on a fresh clone installs everything (uv, then the locked workspace).

SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
VENV := .venv
FINOPS := $(VENV)/bin/finops
STAMP := $(VENV)/.installed
# The broker's disk storage: s3rver, a file-backed S3 server from the npm registry (MIT).
S3RVER := $(TOOLS)/s3rver/node_modules/.bin/s3rver
INSTALLED := $(STAMP) $(S3RVER)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help install chromium demo test test-unit test-integration test-e2e up down status lint format typecheck docs bench clean deploy-check

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv

$(STAMP): pyproject.toml uv.lock libs/*/pyproject.toml services/*/pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $(STAMP)

$(S3RVER):
	@command -v npm >/dev/null || { echo "npm is needed to install s3rver (the broker's disk storage): install Node.js and npm"; exit 2; }
	npm install --prefix $(TOOLS)/s3rver --no-audit --no-fund --loglevel=error s3rver@3.7.1

# Headless Chromium for the report's rendering test: Debian's chromium-headless-shell and the
# libraries it needs that a base system lacks, unpacked into .tools/chromium (apt-get download
# + dpkg -x: nothing is installed system-wide). Needs a Debian/Ubuntu apt with bookworm's names.
CHROMIUM := $(TOOLS)/bin/chromium-headless-shell
CHROMIUM_DEBS := chromium-headless-shell chromium-common libopenh264-7 libdouble-conversion3 \
	libopus0 libharfbuzz-subset0 libxnvctrl0 libpulse0 libflac12 libminizip1 libogg0 \
	libsndfile1 libasyncns0 libvorbis0a libvorbisenc2 libmpg123-0 libmp3lame0

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "apt-get is needed to fetch chromium-headless-shell (Debian packages) into $(TOOLS)/chromium"; exit 2; }
	rm -rf $(TOOLS)/chromium && mkdir -p $(TOOLS)/chromium/debs $(TOOLS)/bin
	cd $(TOOLS)/chromium/debs && apt-get download $(CHROMIUM_DEBS)
	for deb in $(TOOLS)/chromium/debs/*.deb; do dpkg -x "$$deb" $(TOOLS)/chromium/root; done
	rm -rf $(TOOLS)/chromium/debs
	printf '#!/bin/sh\nroot="$$(cd "$$(dirname "$$0")/../chromium/root" && pwd)"\nexport LD_LIBRARY_PATH="$$root/usr/lib/x86_64-linux-gnu:$$root/usr/lib/x86_64-linux-gnu/pulseaudio$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}"\nexec "$$root/usr/lib/chromium/chromium-headless-shell" "$$@"\n' > $@
	chmod +x $@

chromium: $(CHROMIUM) ## headless Chromium into .tools/ (for the report rendering test)

install: $(INSTALLED) ## install the locked workspace into .venv and s3rver into .tools/

demo: $(INSTALLED) ## the main job: the whole-fleet simulation on the local stack, an HTML report in reports/
	$(FINOPS) demo

# The suite mostly waits (for services, the broker, group joins), so it runs in three
# pytest-xdist workers on two cores (10 min 22 s against 13 min 0 s with two, 2026-12-06), each
# with its own session infrastructure on free ports (tests/conftest.py). A test file stays on
# one worker, and files go out in collection order, so the long e2e files start first.
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 3
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: $(INSTALLED) $(CHROMIUM) ## the whole suite: unit, integration (real Postgres/Redis/broker), e2e
	$(VENV)/bin/pytest -q $(PYTEST_PARALLEL)

test-unit: $(INSTALLED) ## unit tests only (no infrastructure)
	$(VENV)/bin/pytest -q tests/unit

test-integration: $(INSTALLED)
	$(VENV)/bin/pytest -q $(PYTEST_PARALLEL) tests/integration

test-e2e: $(INSTALLED) $(CHROMIUM)
	$(VENV)/bin/pytest -q $(PYTEST_PARALLEL) tests/e2e

up: $(INSTALLED) ## start the local stack in the foreground (Ctrl-C stops it)
	$(FINOPS) up

down: $(INSTALLED) ## stop a detached stack
	$(FINOPS) down

status: $(INSTALLED) ## one line per component
	$(FINOPS) status

lint: $(INSTALLED) deploy-check ## ruff (lint + format check), mypy, and the deploy/ checks
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# the SDK's tests too: they use it as an agent's typed code would
	$(VENV)/bin/mypy libs services tests/unit/client

format: $(INSTALLED) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: $(STAMP) ## rewrite the error-code and settings tables in README.md and docs/ from the code, and the README's bench table from bench/out/figures.md
	$(VENV)/bin/python -m finops.common.error_docs README.md docs/*.md
	$(VENV)/bin/python -m finops.common.settings_docs docs/*.md
	$(VENV)/bin/python bench/_runner.py --readme README.md

bench: $(INSTALLED) ## run every benchmark under bench/; one table of figures, baselines, targets in bench/out/
	$(VENV)/bin/python bench/_runner.py $(BENCH_ARGS)

# kubectl (its `kustomize`) and promtool come from Debian's kubernetes-client and prometheus
# packages, downloaded with the project's own package lists and unpacked into .tools/deploy:
# nothing is installed on the system.
DEPLOY_TOOLS := $(TOOLS)/deploy
DEPLOY_APT := -o Dir::State::Lists=$(CURDIR)/$(DEPLOY_TOOLS)/apt/lists -o Dir::Cache=$(CURDIR)/$(DEPLOY_TOOLS)/apt/cache
DEPLOY_STAMP := $(DEPLOY_TOOLS)/.installed

$(DEPLOY_STAMP):
	mkdir -p $(DEPLOY_TOOLS)/apt/lists/partial $(DEPLOY_TOOLS)/apt/cache/archives/partial $(DEPLOY_TOOLS)/debs
	apt-get -qq $(DEPLOY_APT) update
	cd $(DEPLOY_TOOLS)/debs && apt-get -qq $(DEPLOY_APT) download kubernetes-client prometheus
	for deb in $(DEPLOY_TOOLS)/debs/*.deb; do dpkg -x "$$deb" $(DEPLOY_TOOLS)/root; done
	mkdir -p $(DEPLOY_TOOLS)/bin && mv $(DEPLOY_TOOLS)/root/usr/bin/kubectl $(DEPLOY_TOOLS)/root/usr/bin/promtool $(DEPLOY_TOOLS)/bin/
	rm -rf $(DEPLOY_TOOLS)/debs $(DEPLOY_TOOLS)/apt $(DEPLOY_TOOLS)/root
	@touch $(DEPLOY_STAMP)

deploy-check: $(STAMP) $(DEPLOY_STAMP) ## compose schema, kustomize render + Kubernetes schemas, promtool, hadolint
	$(VENV)/bin/python deploy/check.py --bin $(VENV)/bin --kubectl $(DEPLOY_TOOLS)/bin/kubectl --promtool $(DEPLOY_TOOLS)/bin/promtool

# A stack still running from .finops/ would keep its processes and every port once its folder
# is gone, where no `finops` command finds it again: it is stopped first. Without .venv (nothing
# installed yet) no stack can run, and the folder is only removed.
clean: ## stop a stack running from .finops/ (finops down), then remove .finops/
	@if [ -f .finops/stack.json ] && [ -x $(FINOPS) ]; then FINOPS_DATA_DIR=.finops $(FINOPS) down; fi
	rm -rf .finops
