# The two commands of the README, and their parts.
#   make demo   the example app, its asset origin and a mirror, and a chaos panel to break
#               them: http://127.0.0.1:8000 (DEMO_ARGS='--port 8080' for another port)
#   make test   lint, type-check and run the whole test suite (installs what it needs)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_ARGS ?=

.PHONY: demo test check pytest bootstrap system-deps bench bench-serve clean

demo: bootstrap
	$(BIN)/python -m examples.demo $(DEMO_ARGS)

test: bootstrap system-deps check pytest

check:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest:
	$(BIN)/python -m pytest

bootstrap:
	@PYTHON=$(PYTHON) sh scripts/bootstrap.sh

system-deps:
	@sh scripts/system-deps.sh

bench: bootstrap
	$(BIN)/python benchmarks/build.py

bench-serve: bootstrap
	$(BIN)/python benchmarks/serve.py

clean:
	rm -rf .venv .cache examples/demo_dist .mypy_cache .ruff_cache .pytest_cache
