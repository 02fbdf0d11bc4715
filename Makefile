# Two commands on a fresh machine (Python 3.11 + the package registries):
#   make demo   set everything up and run the end-to-end demo
#   make test   set everything up and run the checks and tests
# The interpreter .venv is built from: the distribution's python3.11 first (an optimized
# build), see scripts/pick_python.sh; `make setup PYTHON=...` names another.
PYTHON ?= $(shell sh scripts/pick_python.sh)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck pytest bench clean contracts contracts-check

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@echo "building $(VENV) from $(PYTHON) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# libp2p pulls in trio-typing, whose stale stubs would shadow trio's own inline types.
	rm -rf $(VENV)/lib/python3.11/site-packages/trio-stubs
	@if [ -f package-lock.json ] && command -v npm >/dev/null; then npm ci --silent --no-audit --no-fund; fi
	touch $(STAMP)

demo: setup
	$(BIN)/python -m examples.swarm --live

lint: setup
	$(BIN)/ruff check axl agents compute coordination tests benchmarks examples
	$(BIN)/ruff format --check axl agents compute coordination tests benchmarks examples

typecheck: setup
	$(BIN)/mypy axl agents compute coordination
	$(BIN)/mypy tests benchmarks examples

pytest: setup
	$(BIN)/pytest -q --durations=20

test: contracts-check lint typecheck pytest

# Recompile contracts/*.sol with the pinned solc-js into coordination/artifacts/.
contracts: setup
	node scripts/compile_contracts.mjs

# Fail when the committed contract artifacts differ from a fresh compile.
contracts-check: setup
	@if command -v node >/dev/null && [ -d node_modules/solc ]; then node scripts/compile_contracts.mjs --check; \
	else echo "contracts-check skipped: node/npm absent (committed artifacts used as they are)"; fi

bench: setup
	$(BIN)/python -m benchmarks.bus_throughput

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
