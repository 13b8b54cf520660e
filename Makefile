# The two commands of the README, and their parts.
#   make demo   build the example front end and print what was published
#   make test   lint, type-check and run the whole test suite (installs what it needs)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test check pytest bootstrap system-deps bench bench-serve clean

demo: bootstrap
	$(BIN)/python examples/demo.py

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
