# Two commands for a new user: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup lint install clean-venv check-arm64

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/xiaoqu demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy $$(ls bench/*.py | grep -v '/_')  # benches are scripts; their helpers (bench/_*.py) come in by import

# What the tests need on this machine: Debian packages (installed when run as root) and the running
# Mosquitto and PostgreSQL (started when they are not). Quick when everything is there.
setup:
	PY=$(PY) .ci/setup-machine

test: setup
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest -q

# The gateway on an emulated Raspberry Pi (Debian bookworm arm64, qemu-user); root; cached root in
# /var/cache/xiaoqu-arm64 (see packaging/arm64/check.sh).
check-arm64: $(STAMP)
	packaging/arm64/check.sh

clean-venv:
	rm -rf $(VENV)
