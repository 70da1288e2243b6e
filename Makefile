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

# The modules that type-check clean (mypy, setup.cfg [mypy]): a ratchet that grows to the whole
# package. Add a module once `$(BIN)/mypy --follow-imports=silent <module>` passes; never remove
# one. --follow-imports=silent: the modules they import are analysed, but report no errors.
MYPY_CLEAN := \
	pyro_bdl/__init__.py \
	pyro_bdl/_checks.py \
	pyro_bdl/arviz.py \
	pyro_bdl/checkpoint.py \
	pyro_bdl/datasets.py \
	pyro_bdl/distill.py \
	pyro_bdl/distributions \
	pyro_bdl/guides.py \
	pyro_bdl/infer.py \
	pyro_bdl/likelihoods \
	pyro_bdl/metrics.py \
	pyro_bdl/nn.py \
	pyro_bdl/plots.py \
	pyro_bdl/priors.py \
	pyro_bdl/uncertainty.py \
	pyro_bdl/workflows

# ruff (style, complexity, private imports; ruff.toml), mypy on MYPY_CLEAN, then the layering
# of ARCHITECTURE.md §1
lint: $(STAMP)
	$(BIN)/ruff check pyro_bdl tests examples benchmarks
	$(BIN)/ruff format --check pyro_bdl tests examples benchmarks
	$(BIN)/mypy --follow-imports=silent $(MYPY_CLEAN)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layering.py

# The whole package; not in lint until the ratchet MYPY_CLEAN covers it.
typecheck: $(STAMP)
	$(BIN)/mypy pyro_bdl

clean:
	rm -rf $(VENV) build *.egg-info docs/_build
