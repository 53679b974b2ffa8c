"""Committed notebooks are clean, well named, and agree with their paired py:percent files.

The pair is compared with jupytext's Python API (cell types, sources and tags), not with
`jupytext --sync`, which decides by file timestamps and is meaningless in a fresh clone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PAIRED_SCRIPTS = sorted(NOTEBOOK_DIR.glob("[0-9]*.py"))
NAME = re.compile(r"^\d{2}_[a-z0-9]+(?:_[a-z0-9]+)*$")  # NN_snake_case_title


def _cells(path: Path) -> list[tuple[str, str, list]]:
    nb = jupytext.read(path)
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def pair_differences(ipynb: Path, script: Path) -> list[str]:
    """Where the notebook and its paired .py disagree (cell type, source, tags); [] if they agree."""
    a, b = _cells(ipynb), _cells(script)
    problems = []
    if len(a) != len(b):
        problems.append(f"{ipynb.name} has {len(a)} cells, {script.name} has {len(b)}")
    for i, (ca, cb) in enumerate(zip(a, b)):
        for what, va, vb in zip(("cell type", "source", "tags"), ca, cb):
            if va != vb:
                problems.append(f"cell {i}: {what} differs:\n  ipynb: {va!r}\n  py:    {vb!r}")
    return problems


def dirty_parts(ipynb: Path) -> list[str]:
    """Outputs, execution counts and widget state left in a committed .ipynb ([] if clean)."""
    nb = json.loads(ipynb.read_text(encoding="utf-8"))
    problems = []
    if "widgets" in nb.get("metadata", {}):
        problems.append("notebook metadata holds 'widgets' state")
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("outputs"):
            problems.append(f"cell {i} has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has execution_count {cell['execution_count']}")
    return problems


HOW_TO_FIX = "run `make sync` (pair) and `make strip` (outputs), then commit both files"


def test_at_least_one_notebook_exists():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}: the notebook checks would pass vacuously"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_name(ipynb):
    assert NAME.match(ipynb.stem), f"{ipynb.name}: name must look like NN_snake_case_title.ipynb"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_paired_script(ipynb):
    assert ipynb.with_suffix(".py").exists(), f"{ipynb.name} has no paired {ipynb.stem}.py; {HOW_TO_FIX}"


@pytest.mark.parametrize("script", PAIRED_SCRIPTS, ids=[p.stem for p in PAIRED_SCRIPTS])
def test_script_has_paired_notebook(script):
    assert script.with_suffix(".ipynb").exists(), f"{script.name} has no paired {script.stem}.ipynb; {HOW_TO_FIX}"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_pair_agrees(ipynb):
    script = ipynb.with_suffix(".py")
    if not script.exists():
        pytest.skip("no paired .py (reported by test_notebook_has_paired_script)")
    problems = pair_differences(ipynb, script)
    assert not problems, f"{ipynb.name} and {script.name} differ ({HOW_TO_FIX}):\n" + "\n".join(problems)


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean(ipynb):
    problems = dirty_parts(ipynb)
    assert not problems, f"{ipynb.name} is not clean ({HOW_TO_FIX}):\n" + "\n".join(problems)


# --- the checks themselves must be able to fail -------------------------------------------------

_PY = """\
# %% [markdown]
# # Title

# %%
x = 1

# %% tags=["nbval-skip"]
print(x)
"""


def _write_pair(tmp_path: Path, script_text: str) -> tuple[Path, Path]:
    script = tmp_path / "01_example.py"
    script.write_text(_PY, encoding="utf-8")
    ipynb = tmp_path / "01_example.ipynb"
    jupytext.write(jupytext.read(script), ipynb)
    script.write_text(script_text, encoding="utf-8")
    return ipynb, script


def test_pair_differences_accepts_an_identical_pair(tmp_path):
    assert pair_differences(*_write_pair(tmp_path, _PY)) == []


@pytest.mark.parametrize(
    "script_text, expected",
    [
        (_PY.replace("x = 1", "x = 2"), "source differs"),
        (_PY.replace('tags=["nbval-skip"]', 'tags=["nbval-ignore-output"]'), "tags differs"),
        (_PY.replace("# %%\nx = 1", "# %% [markdown]\n# x = 1"), "cell type differs"),
        (_PY + "\n# %%\ny = 2\n", "has 3 cells"),
    ],
    ids=["source", "tags", "cell-type", "extra-cell"],
)
def test_pair_differences_catches_a_different_pair(tmp_path, script_text, expected):
    problems = pair_differences(*_write_pair(tmp_path, script_text))
    assert any(expected in p for p in problems), problems


def test_dirty_parts_catches_outputs_counts_and_widgets(tmp_path):
    ipynb, _ = _write_pair(tmp_path, _PY)
    assert dirty_parts(ipynb) == []
    nb = json.loads(ipynb.read_text(encoding="utf-8"))
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 1
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    ipynb.write_text(json.dumps(nb), encoding="utf-8")
    problems = "\n".join(dirty_parts(ipynb))
    assert "has outputs" in problems and "execution_count" in problems and "widgets" in problems


def test_name_pattern():
    good = ["00_setup_and_tour", "02_degradations_blur", "08_hot_vs_cold_comparison"]
    bad = ["2_blur", "02-blur", "02_Blur", "_scratch", "02_blur_", "02__blur", "002_blur"]
    assert all(NAME.match(n) for n in good)
    assert not any(NAME.match(n) for n in bad)
