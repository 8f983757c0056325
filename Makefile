# Two commands set everything up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned: a CPU build of 2.13.0 lies on this machine's disk (any other spec downloads GBs).
TORCH ?= torch==2.13.0
RUN ?= runs/quickstart

.PHONY: install run lint docs test bench clean

$(BIN)/animevae: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(BIN)/animevae

# The main job on the built-in offline faces: train a few epochs, then write 100 faces and their grid.
run: install
	$(BIN)/animevae train --data builtin --epochs 6 --preset sharp --out $(RUN) --overwrite
	$(BIN)/animevae generate --run $(RUN) --n 100 --out $(RUN)/generated

# ruff (lint + format) and the import-layer contract (pyproject.toml: every import points down the README's Layout).
lint: install
	$(BIN)/ruff check src tests benchmarks docs experiments
	$(BIN)/ruff format --check src tests benchmarks docs experiments
	$(BIN)/lint-imports

# The documentation site (mkdocs.yml): every page, the CLI reference generated from the parser, the API from docstrings.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Every test, one pytest-xdist worker per core (a file's tests stay on one worker), each worker's torch on one
# thread: the workers then share the cores instead of fighting over them.
test: install lint docs
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto --dist loadfile --durations=20

bench: install
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/peak.py
	$(BIN)/python benchmarks/precision.py

clean:
	rm -rf $(VENV) runs site
