# Cold Diffusion course: `make course` to learn, `make test` to check everything.
# Everything runs inside a local virtualenv ($(VENV)) holding coldlib (editable) and its dev extra.

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: course test sync strip bench clean

# The main job: open the notebooks in Jupyter Lab.
course: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# The whole suite: unit tests, then every notebook run top to bottom (nbval) in fast mode.
# Extra pytest arguments: make test PYTEST_ARGS="-x -k blur"
test: $(STAMP)
	COLDLIB_FAST=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# Create the virtualenv and install coldlib with its dev extra; redone only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

# For authors: bring each notebook and its paired .py (see jupytext.toml) in step; the newer file wins.
# A numbered .py without its .ipynb yet gets one.
NB_IPYNB := $(wildcard notebooks/*.ipynb)
NB_PY := $(filter-out $(NB_IPYNB:.ipynb=.py),$(wildcard notebooks/[0-9]*.py))
sync: $(STAMP)
	$(if $(NB_IPYNB)$(NB_PY),$(BIN)/jupytext --sync $(NB_IPYNB) $(NB_PY),@echo "no notebooks to sync")

# For authors: clear outputs, execution counts and widget state before committing the .ipynb files
# (tests/test_notebook_hygiene.py checks this).
strip: $(STAMP)
	$(BIN)/python -c 'import sys, nbformat; \
	nbs = {p: nbformat.read(p, as_version=4) for p in sys.argv[1:]}; \
	[c.update(outputs=[], execution_count=None) for nb in nbs.values() for c in nb.cells if c.cell_type == "code"]; \
	[nb.metadata.pop("widgets", None) for nb in nbs.values()]; \
	[nbformat.write(nb, p) for p, nb in nbs.items()]' $(NB_IPYNB)

bench: $(STAMP)
	$(BIN)/python bench/bench_degradations.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +
