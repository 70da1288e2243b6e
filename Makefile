# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
# Each creates .venv with Python 3.11, installs torch==2.13.0 first (a CPU build pip takes from
# local disk; ranges elsewhere keep pip from replacing it), then the package with its extras.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck docs clean

docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pyro-bdl demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# ruff (style, complexity, private imports; ruff.toml), mypy on the whole package (zero errors),
# then the layering of ARCHITECTURE.md §1 (tests/test_layering.py)
lint: $(STAMP)
	$(BIN)/ruff check pyro_bdl tests examples benchmarks
	$(BIN)/ruff format --check pyro_bdl tests examples benchmarks
	$(BIN)/mypy pyro_bdl
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layering.py

typecheck: $(STAMP)
	$(BIN)/mypy pyro_bdl

clean:
	rm -rf $(VENV) build *.egg-info docs/_build
