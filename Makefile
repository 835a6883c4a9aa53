# Clinic Desk: one command for each thing a person or CI does. See docs/building.md.
#   make run      set up (apt libraries, .venv, packages) and start the desktop application
#   make demo     set up, fill a demo store (once) and start the application on it
#   make server   set up and start the central server
#   make test     set up, lint and run every test headless (what CI runs)
#   make lint     ruff check, ruff format --check, mypy
#   make bench    run the benchmarks (JSON into benchmarks/out/)
#   make bundle   build the one-folder installer bundle into dist/ and the Linux tarball
# Variables: DATA_DIR, DEMO_DIR, SERVER_DIR, HOST, PORT, ALLOW_FILE_KEYRING=1, PYTEST_ARGS.

SHELL := /bin/bash
comma := ,
VENV ?= $(CURDIR)/.venv
BIN := $(VENV)/bin
PY := $(BIN)/python
XDG_DATA_HOME ?= $(HOME)/.local/share
DEMO_DIR ?= $(XDG_DATA_HOME)/clinic-desk-demo
SERVER_DIR ?= $(XDG_DATA_HOME)/clinic-desk-server
HOST ?= 127.0.0.1
PORT ?= 8000
# Opt in to keyrings.alt's plain-text file backend when this machine has no keyring service
# (headless boxes, kiosks). Off by default: the key would then sit in a file in the clear.
ALLOW_FILE_KEYRING ?= 0
DATA_DIR_ARG := $(if $(DATA_DIR),--data-dir "$(DATA_DIR)",)
RUN_EXTRAS := demo$(if $(filter 1,$(ALLOW_FILE_KEYRING)),$(comma)filekeyring,)
export VENV ALLOW_FILE_KEYRING

.PHONY: help setup run demo server test test-fast lint format bench bundle clean

help:
	@sed -n '2,10p' Makefile | sed 's/^# \{0,1\}//'

setup:
	scripts/bootstrap.sh --extras server,demo,test

run:
	scripts/bootstrap.sh --extras $(RUN_EXTRAS)
	scripts/with-keyring.sh $(BIN)/clinic-desktop $(DATA_DIR_ARG)

demo:
	scripts/bootstrap.sh --extras $(RUN_EXTRAS)
	@if [ -n "$$(ls -A "$(DEMO_DIR)" 2>/dev/null)" ]; then \
		echo "demo: $(DEMO_DIR) already holds a store; delete it to load the demo again"; \
	else \
		scripts/with-keyring.sh $(BIN)/clinic-desktop --data-dir "$(DEMO_DIR)" --load-demo; \
	fi
	scripts/with-keyring.sh $(BIN)/clinic-desktop --data-dir "$(DEMO_DIR)"

server:
	scripts/bootstrap.sh --extras server,demo
	$(BIN)/clinic-server --data-dir "$(SERVER_DIR)" --host $(HOST) --port $(PORT)

# CI installs PostgreSQL too when it is missing; locally only a stopped one is started.
test:
	scripts/bootstrap.sh --extras server,demo,test,installer,filekeyring $(if $(filter true,$(CI)),--with-postgres,)
	scripts/run-tests.sh

# Everything but the bundle build (about a minute); handy while developing.
test-fast:
	scripts/bootstrap.sh --extras server,demo,test
	scripts/run-tests.sh -m "not installer"

lint:
	scripts/bootstrap.sh --extras server,demo,test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench:
	scripts/bootstrap.sh --extras server,demo,test,installer
	scripts/run-benchmarks.sh $(BENCH)

bundle:
	scripts/bootstrap.sh --extras installer,filekeyring
	installer/build.sh --tarball

clean:
	rm -rf build dist
