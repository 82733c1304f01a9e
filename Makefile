# The README's two set-up commands: `make demo` and `make test`. Each builds .venv from the
# package's own extras when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit fuzz bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,serve]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python -m wsproxy_agent.demo $(DEMO_ARGS)

test: lint typecheck unit

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy protocol engine_agent proxy_agent wsproxy_agent console_proxy bench tests

unit: $(BIN)/.installed
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The long fuzzing run (fuzz/README.md): every harness for FUZZ_SECONDS each (default: 30
# minutes in all), niced so that it leaves the machine usable. `make fuzz FUZZ_SECONDS=60`.
FUZZ_SECONDS ?=
FUZZ_NICE ?= 10

$(BIN)/.fuzz-installed: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,dev,fuzz]'
	touch $@

fuzz: $(BIN)/.fuzz-installed
	nice -n $(FUZZ_NICE) $(BIN)/python -m fuzz.run $(if $(FUZZ_SECONDS),--seconds $(FUZZ_SECONDS))

# The benchmarks (BENCHMARKS.md): `make bench`, or `make bench BENCH_ARGS="--only fleet"`,
# `BENCH_ARGS=--quick` for a smoke run. The root-SSH baseline needs Debian's openssh-server.
BENCH_ARGS ?=
SSHD := /usr/sbin/sshd

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]'
	touch $@

$(SSHD):
	@if [ "$$(id -u)" != 0 ]; then \
		echo "make bench measures against OpenSSH: install it first (sudo apt-get install openssh-server)"; \
		exit 1; fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server \
		|| (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server)

bench: $(BIN)/.bench-installed $(SSHD)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .fuzz
