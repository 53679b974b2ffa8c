# Cold Diffusion course: `make course` to learn, `make test` to check everything,
# `make quick` for a fast developer loop (the unit tests not marked slow; no notebooks),
# `make render` (authors) to re-run the lessons and keep their outputs.
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

.PHONY: course test quick sync render bench clean gpu-check

# The main job: open the notebooks in JupyterLab.
# The server's root is the repository, not notebooks/: jupytext's contents manager looks for
# jupytext.toml only inside the server's root, and without it a save would write a different .py header.
# The browser opens on notebooks/.
course: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks $(ALLOW_ROOT) $(LAB_ARGS)

# The whole suite: unit tests, then every notebook run top to bottom (nbval) in fast mode.
# Extra pytest arguments: make test PYTEST_ARGS="-x -k blur"
# pytest-xdist spreads the test files over every core (--dist loadfile: a file's tests, or one lesson's cells,
# stay on one worker and in order); each FAST-mode lesson runs one thread, so two cores halve the wall time.
test: $(STAMP)
	COLDLIB_FAST=1 $(BIN)/python -m pytest -n auto --dist loadfile $(PYTEST_ARGS)

# The developer loop: the same suite in fast mode without the tests marked slow (pytest -m "not slow").
quick: $(STAMP)
	COLDLIB_FAST=1 $(BIN)/python -m pytest tests -m "not slow" -n auto --dist loadfile $(PYTEST_ARGS)

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

# For authors: run every lesson in full mode and commit it with its outputs (GitHub, Colab and nbviewer then
# show every figure). Records the .py's SHA-256, the wall time and the machine, writes the time into each
# header, and replaces machine paths (coldlib/render.py). Best on an otherwise idle machine, since the times are
# published. One or a few lessons: make render LESSONS="03 05".
LESSONS ?=
render: $(STAMP)
	$(BIN)/python -m coldlib.render $(LESSONS)

bench: $(STAMP)
	$(BIN)/python bench/bench_degradations.py

# On a CUDA machine (no virtualenv needed there): bench/gpu_check.py; e.g. make gpu-check GPU_CHECK_ARGS="--out DIR" (or "--dry-run").
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) bench/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +
