# Developer shortcuts. `make test` (= ./scripts/test) sets up everything and runs every gate;
# lint, typecheck and fmt assume .venv already exists (run `make test` once first).

VENV := .venv/bin
PATHS := src tests

.PHONY: run test check lint typecheck fmt duplicates

run:
	./scripts/run

test:
	./scripts/test

check:
	./scripts/test

lint:
	$(VENV)/ruff check $(PATHS)
	$(VENV)/ruff format --check $(PATHS)

typecheck:
	$(VENV)/mypy

fmt:
	$(VENV)/ruff format $(PATHS)
	$(VENV)/ruff check --fix $(PATHS)

# Pairs of repeated code over src/ and tests/, sorted into record shapes and repeated logic
# (needs the `duplicates` command on PATH; see src/penny/devtools/duplicates.py).
duplicates:
	$(VENV)/python -m penny.devtools.duplicates .
