# make demo: set up .venv and run the demo on the embedded fake cluster.
# make test: set up .venv and run the linters, the type checker, the layer contracts and the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck layers pytest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kruise-agents demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

# worksteal: the slow statistical tests must not queue behind one another on one worker.
pytest: $(STAMP)
	$(BIN)/pytest -q -n auto --dist worksteal

test: lint typecheck layers pytest

bench: $(STAMP)
	$(BIN)/python bench/sim_throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
