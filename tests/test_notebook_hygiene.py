"""Notebook hygiene, in two parts: what is committed, and what a learner's session may change.

COMMITTED notebooks (read from git's index, i.e. what is committed or staged to be: the working tree plays no
part) are well named, paired with a py:percent .py whose cells agree, and are fresh renders of that .py: executed
in full mode by `make render`, from the current source (a SHA-256 in their metadata), complete, without errors,
machine paths or widget state, within the output and time budgets (``coldlib.render.render_problems``). A .py
survives a save unchanged: the repository's jupytext.toml drops the jupytext version from its header.

The WORKING TREE is where learners run the lessons: JupyterLab saves outputs, execution counts and widget
state into the tracked .ipynb files, and that must not break `make test`. There the checks are only that no
lesson was deleted and that each saved notebook's cells still agree with its paired .py (jupytext keeps them
in step on every save).

Outside a git checkout (a tarball, a copy without .git) the committed checks read the working tree instead,
and say so: test_committed_notebooks_are_read_from_git is skipped with the reason, and a notebook holding
outputs that are not a clean render is an expected failure (xfail, with the same reason), since a learner may
have saved them.

Pairs are compared with jupytext's Python API (cell types, sources and tags), not with `jupytext --sync`,
which decides by file timestamps and is meaningless in a fresh clone.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jupytext
import pytest

from coldlib.render import render_problems

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
JUPYTEXT_CONFIG = ROOT / "jupytext.toml"
NAME = re.compile(r"^\d{2}_[a-z0-9]+(?:_[a-z0-9]+)*$")  # NN_snake_case_title

# THE rule on outputs lives in coldlib.render: committed .ipynb files are renders (`make render`) of their .py.


# --- where the notebooks are read from ------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """The notebooks/ files of one source: file name -> text (NN_title.ipynb and the paired NN_title.py)."""

    files: dict[str, str]
    source: str  # "git index" or "working tree"
    why_not_git: str = ""  # why the committed files could not be read from git ("" when they were)

    @property
    def notebooks(self) -> list[str]:
        return sorted(n for n in self.files if n.endswith(".ipynb"))

    @property
    def scripts(self) -> list[str]:
        return sorted(n for n in self.files if n.endswith(".py") and n[:1].isdigit())


def working_tree(notebook_dir: Path = NOTEBOOK_DIR) -> Snapshot:
    """The notebooks and paired scripts as they are on disk now."""
    paths = [*notebook_dir.glob("*.ipynb"), *notebook_dir.glob("[0-9]*.py")]
    return Snapshot({p.name: p.read_text(encoding="utf-8") for p in sorted(paths)}, "working tree")


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, encoding="utf-8")
    if done.returncode:
        raise RuntimeError((done.stderr.strip().splitlines() or [f"git exited with {done.returncode}"])[0])
    return done.stdout


def committed(root: Path = ROOT) -> Snapshot:
    """The notebooks as committed: git's index (HEAD plus anything staged), read without the working tree.

    Falls back to the working tree, with the reason in ``why_not_git``, where git cannot say.
    """
    notebook_dir = root / "notebooks"
    try:
        listing = _git(root, "ls-files", "--stage", "-z", "--", "notebooks")
        files = {}
        for entry in filter(None, listing.split("\0")):
            info, path = entry.split("\t", 1)
            _mode, sha, stage = info.split()
            name = Path(path)
            if stage != "0" or name.parent != Path("notebooks"):
                continue  # conflict stages; files in sub-folders
            if name.suffix == ".ipynb" or (name.suffix == ".py" and name.name[:1].isdigit()):
                files[name.name] = _git(root, "cat-file", "blob", sha)
    except (OSError, RuntimeError) as err:  # no git, or not a checkout
        return Snapshot(working_tree(notebook_dir).files, "working tree", f"not a git checkout ({err})")
    if not any(n.endswith(".ipynb") for n in files):
        return Snapshot(working_tree(notebook_dir).files, "working tree", f"git tracks no notebook in {notebook_dir}")
    return Snapshot(files, "git index")


COMMITTED = committed()
WORKING = working_tree()
FROM_GIT = not COMMITTED.why_not_git
FALLBACK_NOTE = (f"{COMMITTED.why_not_git}: the 'committed' checks read the working tree instead, where a "
                 f"learner's saved outputs are allowed")


# --- the checks, on texts ----------------------------------------------------------------------------------------

def _cells(text: str, fmt: str) -> list[tuple[str, str, list]]:
    nb = jupytext.reads(text, fmt=fmt)
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def pair_differences(ipynb_text: str, script_text: str, names: tuple[str, str] = ("ipynb", "py")) -> list[str]:
    """Where a notebook and its paired .py disagree (cell type, source, tags); [] if they agree."""
    a, b = _cells(ipynb_text, "ipynb"), _cells(script_text, "py:percent")
    problems = []
    if len(a) != len(b):
        problems.append(f"{names[0]} has {len(a)} cells, {names[1]} has {len(b)}")
    for i, (ca, cb) in enumerate(zip(a, b)):
        for what, va, vb in zip(("cell type", "source", "tags"), ca, cb):
            if va != vb:
                problems.append(f"cell {i}: {what} differs:\n  ipynb: {va!r}\n  py:    {vb!r}")
    return problems


def dirty_parts(ipynb_text: str) -> list[str]:
    """Outputs, execution counts and widget state held by a .ipynb ([] if stripped)."""
    nb = json.loads(ipynb_text)
    problems = []
    if "widgets" in nb.get("metadata", {}):
        problems.append("notebook metadata holds 'widgets' state")
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("outputs"):
            problems.append(f"cell {i} has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has execution_count {cell['execution_count']}")
    return problems


def _py(ipynb: str) -> str:
    return ipynb[: -len(".ipynb")] + ".py"


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


HOW_TO_FIX = "run `make sync` (pair) and `make render` (outputs), then `git add` both files"
HOW_TO_RESTORE = ("save the notebook in JupyterLab (jupytext rewrites the .py) or run `make sync`; "
                  "`git checkout -- notebooks/{stem}.ipynb notebooks/{stem}.py` restores the lesson as committed")


# --- (a) what is committed -------------------------------------------------------------------------------------

def test_committed_notebooks_are_read_from_git():
    if not FROM_GIT:
        pytest.skip(FALLBACK_NOTE)
    assert COMMITTED.source == "git index"


def test_at_least_one_notebook_exists():
    assert COMMITTED.notebooks, f"no notebooks in {NOTEBOOK_DIR} ({COMMITTED.source}): the checks would pass vacuously"


@pytest.mark.parametrize("ipynb", COMMITTED.notebooks, ids=_stem)
def test_notebook_name(ipynb):
    assert NAME.match(_stem(ipynb)), f"{ipynb}: name must look like NN_snake_case_title.ipynb"


@pytest.mark.parametrize("ipynb", COMMITTED.notebooks, ids=_stem)
def test_notebook_has_paired_script(ipynb):
    assert _py(ipynb) in COMMITTED.files, f"{ipynb} has no paired {_py(ipynb)} ({COMMITTED.source}); {HOW_TO_FIX}"


@pytest.mark.parametrize("script", COMMITTED.scripts, ids=_stem)
def test_script_has_paired_notebook(script):
    ipynb = _stem(script) + ".ipynb"
    assert ipynb in COMMITTED.files, f"{script} has no paired {ipynb} ({COMMITTED.source}); {HOW_TO_FIX}"


@pytest.mark.parametrize("ipynb", COMMITTED.notebooks, ids=_stem)
def test_pair_agrees(ipynb):
    if _py(ipynb) not in COMMITTED.files:
        pytest.skip("no paired .py (reported by test_notebook_has_paired_script)")
    problems = pair_differences(COMMITTED.files[ipynb], COMMITTED.files[_py(ipynb)], (ipynb, _py(ipynb)))
    assert not problems, f"{ipynb} and {_py(ipynb)} differ ({COMMITTED.source}; {HOW_TO_FIX}):\n" + "\n".join(problems)


@pytest.mark.parametrize("ipynb", COMMITTED.notebooks, ids=_stem)
def test_committed_notebook_is_a_fresh_render(ipynb):
    if _py(ipynb) not in COMMITTED.files:
        pytest.skip("no paired .py (reported by test_notebook_has_paired_script)")
    problems = render_problems(COMMITTED.files[ipynb], COMMITTED.files[_py(ipynb)])
    if problems and not FROM_GIT:
        pytest.xfail(f"{ipynb} is not a clean render, but {FALLBACK_NOTE}")
    assert not problems, (f"{ipynb} is not a fresh, clean render of {_py(ipynb)} ({COMMITTED.source}; run "
                          f"`make render LESSONS={_stem(ipynb)[:2]}`, then `git add` both files):\n" + "\n".join(problems))


# A save must leave the .py byte for byte as committed, whichever jupytext release does it: the header keeps no
# jupytext version (jupytext.toml). Two savers are tried on a temporary copy of the pair and jupytext.toml,
# laid out as in the repository: the command line (`make sync`, `jupytext --to py:percent`) and the contents
# manager that JupyterLab uses, serving the repository root as `make course` does.

def _copy_pair(tmp_path: Path, ipynb: str) -> Path:
    shutil.copy(JUPYTEXT_CONFIG, tmp_path / JUPYTEXT_CONFIG.name)
    (tmp_path / "notebooks").mkdir()
    for name in (ipynb, _py(ipynb)):
        (tmp_path / "notebooks" / name).write_text(COMMITTED.files[name], encoding="utf-8")
    return tmp_path / "notebooks" / _py(ipynb)


def _save_with_cli(root: Path, ipynb: str) -> None:
    from jupytext.cli import jupytext as jupytext_cli

    jupytext_cli(["--quiet", "--to", "py:percent", str(root / "notebooks" / ipynb)])


def _save_with_contents_manager(root: Path, ipynb: str) -> None:
    from jupytext import TextFileContentsManager

    if not isinstance(TextFileContentsManager, type):  # jupytext defers its import error to the first call
        pytest.skip("jupytext's contents manager is unavailable (is jupyter_server installed?)")
    cm = TextFileContentsManager(root_dir=str(root))
    path = f"notebooks/{ipynb}"
    cm.save(cm.get(path), path)


_PAIRED = [n for n in COMMITTED.notebooks if _py(n) in COMMITTED.files]
# Every lesson through the command line; one (the cost is the same for all) through JupyterLab's saver.
_SAVES = [pytest.param(n, _save_with_cli, id=f"{_stem(n)}-cli") for n in _PAIRED] + [
    pytest.param(n, _save_with_contents_manager, id=f"{_stem(n)}-jupyterlab") for n in _PAIRED[:1]]


@pytest.mark.parametrize("ipynb, save", _SAVES)
def test_save_leaves_script_unchanged(tmp_path, ipynb, save):
    script = _copy_pair(tmp_path, ipynb)
    before = script.read_bytes()
    save(tmp_path, ipynb)
    after = script.read_bytes()
    assert b"jupytext_version" not in after, f"a save writes the jupytext version into {script.name}'s header"
    assert after == before, (
        f"saving {ipynb} rewrites {script.name} ({COMMITTED.source}). If jupytext.toml is right, rewrite the .py "
        f"with `.venv/bin/jupytext --to py:percent notebooks/{ipynb}` (`make sync` keeps a newer .py as it is), "
        f"then `git add` it. The .py a save writes:\n{after.decode(errors='replace')[:600]}")


# --- (b) what a learner's session may change in the working tree -----------------------------------------------

@pytest.mark.parametrize("ipynb", COMMITTED.notebooks, ids=_stem)
def test_no_lesson_deleted(ipynb):
    missing = [n for n in (ipynb, _py(ipynb)) if not (NOTEBOOK_DIR / n).is_file()]
    stem = _stem(ipynb)
    assert not missing, (f"committed lesson files missing from {NOTEBOOK_DIR}: {missing}; "
                         f"`git checkout -- notebooks/{stem}.ipynb notebooks/{stem}.py` restores them "
                         f"(`git rm` them to delete the lesson)")


@pytest.mark.parametrize("ipynb", [n for n in WORKING.notebooks if _py(n) in WORKING.files], ids=_stem)
def test_saved_notebook_agrees_with_script(ipynb):
    """Outputs, execution counts and widget state may be saved here, but the cells must match the .py."""
    problems = pair_differences(WORKING.files[ipynb], WORKING.files[_py(ipynb)], (ipynb, _py(ipynb)))
    assert not problems, (f"{ipynb} and {_py(ipynb)} differ in the working tree "
                          f"({HOW_TO_RESTORE.format(stem=_stem(ipynb))}):\n" + "\n".join(problems))


# --- the checks themselves must be able to fail -------------------------------------------------

_PY = """\
# %% [markdown]
# # Title

# %%
x = 1

# %% tags=["nbval-skip"]
print(x)
"""


def _ipynb_text(script_text: str = _PY) -> str:
    return jupytext.writes(jupytext.reads(script_text, fmt="py:percent"), fmt="ipynb")


def _executed(ipynb_text: str) -> str:
    """The notebook as JupyterLab saves it after a run: outputs, execution counts and widget state."""
    nb = json.loads(ipynb_text)
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 1
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return json.dumps(nb, indent=1)


def test_pair_differences_accepts_an_identical_pair():
    assert pair_differences(_ipynb_text(), _PY) == []


def test_pair_differences_ignores_outputs():
    assert pair_differences(_executed(_ipynb_text()), _PY) == []


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
def test_pair_differences_catches_a_different_pair(script_text, expected):
    problems = pair_differences(_ipynb_text(), script_text)
    assert any(expected in p for p in problems), problems


def test_dirty_parts_catches_outputs_counts_and_widgets():
    assert dirty_parts(_ipynb_text()) == []
    problems = "\n".join(dirty_parts(_executed(_ipynb_text())))
    assert "has outputs" in problems and "execution_count" in problems and "widgets" in problems


HAS_GIT = shutil.which("git") is not None


def _git_toplevel(path: Path) -> str:
    try:
        return _git(path, "rev-parse", "--show-toplevel").strip()
    except (OSError, RuntimeError):
        return ""


@pytest.mark.skipif(not HAS_GIT, reason="git is not installed")
def test_committed_reads_git_not_the_working_tree(tmp_path):
    """A learner's saved outputs (working tree) are invisible to the committed checks; a staged one is not."""
    (tmp_path / "notebooks").mkdir()
    ipynb, script = tmp_path / "notebooks" / "01_example.ipynb", tmp_path / "notebooks" / "01_example.py"
    ipynb.write_text(_ipynb_text(), encoding="utf-8")
    script.write_text(_PY, encoding="utf-8")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "notebooks")
    ipynb.write_text(_executed(_ipynb_text()), encoding="utf-8")  # the learner's session

    snapshot = committed(tmp_path)
    assert snapshot.source == "git index" and not snapshot.why_not_git
    assert snapshot.notebooks == ["01_example.ipynb"] and snapshot.scripts == ["01_example.py"]
    assert dirty_parts(snapshot.files["01_example.ipynb"]) == []
    assert dirty_parts(working_tree(tmp_path / "notebooks").files["01_example.ipynb"])

    _git(tmp_path, "add", "notebooks")  # staging the outputs is what the committed checks catch
    assert dirty_parts(committed(tmp_path).files["01_example.ipynb"])


def test_committed_falls_back_to_the_working_tree_and_says_why(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_example.ipynb").write_text(_ipynb_text(), encoding="utf-8")
    if HAS_GIT and _git_toplevel(tmp_path):
        pytest.skip(f"pytest's temporary folder {tmp_path} lies inside a git checkout ({_git_toplevel(tmp_path)})")
    snapshot = committed(tmp_path)
    assert snapshot.source == "working tree" and snapshot.why_not_git
    assert snapshot.notebooks == ["01_example.ipynb"]


def test_name_pattern():
    good = ["00_setup_and_tour", "02_degradations_blur", "08_hot_vs_cold_comparison"]
    bad = ["2_blur", "02-blur", "02_Blur", "_scratch", "02_blur_", "02__blur", "002_blur"]
    assert all(NAME.match(n) for n in good)
    assert not any(NAME.match(n) for n in bad)
