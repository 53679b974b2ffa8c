# Cold Diffusion course: `make course` to learn, `make test` to check everything,
# `make quick` for a fast developer loop (the unit tests not marked slow; no notebooks).
# Everything runs inside a local virtualenv ($(VENV)) holding coldlib (editable) and its dev extra.
# Extra arguments: make course LAB_ARGS="--port 8890 --no-browser" (JupyterLab),
#                  make test PYTEST_ARGS="-x -k blur" (pytest; also for make quick).

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
LAB_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Jupyter refuses to start as root (containers, cloud machines) without --allow-root: add it for root only.
ALLOW_ROOT = $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: course test quick sync strip bench clean gpu-check

# The main job: open the notebooks in JupyterLab.
# The server's root is the repository, not notebooks/: jupytext's contents manager looks for
# jupytext.toml only inside the server's root, and without it a save would write a different .py header.
# The browser opens on notebooks/.
course: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks $(ALLOW_ROOT) $(LAB_ARGS)

# The whole suite: unit tests, then every notebook run top to bottom (nbval) in fast mode.
# Extra pytest arguments: make test PYTEST_ARGS="-x -k blur"
test: $(STAMP)
	COLDLIB_FAST=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# The developer loop: the same suite in fast mode without the tests marked slow (pytest -m "not slow").
quick: $(STAMP)
	COLDLIB_FAST=1 $(BIN)/python -m pytest tests -m "not slow" $(PYTEST_ARGS)

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
# (tests/test_notebook_hygiene.py checks the committed and staged files; a learner's saved outputs in the
# working tree are allowed).
strip: $(STAMP)
	$(BIN)/python -c 'import sys, nbformat; \
	nbs = {p: nbformat.read(p, as_version=4) for p in sys.argv[1:]}; \
	[c.update(outputs=[], execution_count=None) for nb in nbs.values() for c in nb.cells if c.cell_type == "code"]; \
	[nb.metadata.pop("widgets", None) for nb in nbs.values()]; \
	[nbformat.write(nb, p) for p, nb in nbs.items()]' $(NB_IPYNB)

bench: $(STAMP)
	$(BIN)/python bench/bench_degradations.py

# On a CUDA machine (no virtualenv needed there): bench/gpu_check.py; e.g. make gpu-check GPU_CHECK_ARGS="--out DIR" (or "--dry-run").
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) bench/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +
