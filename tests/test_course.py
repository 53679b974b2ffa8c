"""coldlib.course: the repository address, Colab links, the Colab setup cell and the lesson map.

Fast: string checks and a look at the notebooks/ folder (no notebook is executed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from coldlib import course

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_colab_url_points_at_the_notebook():
    path = "notebooks/01_degradations.ipynb"
    url = course.colab_url(path)
    assert url == f"https://colab.research.google.com/github/{course.REPO}/blob/{course.BRANCH}/{path}"
    badge = course.colab_badge_markdown(path)
    assert badge.startswith("[![Open In Colab]") and badge.endswith(f"({url})")
    for bad in ["/abs/path.ipynb", "../x.ipynb", "notebooks/01_degradations.py"]:
        with pytest.raises(ValueError):
            course.colab_url(bad)


def test_lesson_map_is_ordered_and_unique():
    numbers = [lesson.number for lesson in course.LESSONS]
    stems = [lesson.stem for lesson in course.LESSONS]
    assert numbers == sorted(set(numbers)) and len(set(stems)) == len(stems)
    assert all(stem.startswith(f"{n:02d}_") for n, stem in zip(numbers, stems))
    assert course.lesson("01_degradations").number == 1
    table = course.lesson_table_markdown()
    assert table.count("\n") == len(course.LESSONS) + 1
    assert all((("planned" if item.planned else "available") in table) for item in course.LESSONS)


@pytest.mark.parametrize("lesson", [item for item in course.LESSONS if not item.planned], ids=lambda item: item.stem)
def test_available_lessons_have_notebooks(lesson):
    assert (ROOT / lesson.path).is_file(), f"{lesson.path} is in LESSONS but missing"
    assert (ROOT / lesson.path).with_suffix(".py").is_file()


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_is_an_available_lesson(ipynb):
    lesson = course.lesson(ipynb.stem)  # KeyError: add the notebook to coldlib.course.LESSONS
    assert not lesson.planned, f"{ipynb.name} exists: set planned=False for it in coldlib.course.LESSONS"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_badge_and_clone_match_course(ipynb):
    cells = json.loads(ipynb.read_text(encoding="utf-8"))["cells"]
    header = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "markdown"
    assert course.colab_badge_markdown(f"notebooks/{ipynb.name}") in header, "the badge must open this notebook"
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert code and code[0] == course.colab_setup_cell(), (
        "the first code cell must be exactly coldlib.course.colab_setup_cell() (one place for the Colab set-up)")


# --- added: coverage of the smaller helpers ------------------------------------------------------------------

def test_repo_and_branch_are_plain_names():
    assert re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", course.REPO), course.REPO
    assert course.BRANCH and not any(ch in course.BRANCH for ch in " /\\:"), course.BRANCH


def test_github_and_clone_urls():
    assert course.github_url() == f"https://github.com/{course.REPO}"
    assert course.github_url("README.md") == f"https://github.com/{course.REPO}/blob/{course.BRANCH}/README.md"
    assert course.clone_url() == f"https://github.com/{course.REPO}.git"


@pytest.mark.parametrize("spelling", ["./notebooks/01_degradations.ipynb", "notebooks\\01_degradations.ipynb",
                                      PurePosixPath("notebooks/01_degradations.ipynb")])
def test_colab_url_normalises_the_path(spelling):
    expected = f"https://colab.research.google.com/github/{course.REPO}/blob/{course.BRANCH}/notebooks/01_degradations.ipynb"
    assert course.colab_url(spelling) == expected


@pytest.mark.parametrize("bad,phrase", [("/abs/x.ipynb", "relative"), ("notebooks/../x.ipynb", "relative"),
                                        ("notebooks/01_degradations.py", ".ipynb"), ("notebooks/01", ".ipynb")])
def test_colab_url_explains_bad_paths(bad, phrase):
    with pytest.raises(ValueError) as info:
        course.colab_url(bad)
    assert phrase in str(info.value) and repr(bad) in str(info.value)


@pytest.mark.parametrize("stem", ["99_missing", "01_degradations.ipynb", "", "1_degradations"])
def test_lesson_unknown_stem_is_a_key_error_listing_the_known_ones(stem):
    with pytest.raises(KeyError) as info:
        course.lesson(stem)
    message = str(info.value)
    assert repr(stem) in message
    assert all(item.stem in message for item in course.LESSONS)


def test_lesson_returns_each_entry_and_its_path():
    for item in course.LESSONS:
        assert course.lesson(item.stem) is item
        assert item.path == f"notebooks/{item.stem}.ipynb"
        assert item.title.strip() and item.summary.strip()


def test_lesson_is_frozen():
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
        course.LESSONS[0].title = "changed"


def test_lesson_table_rows_link_available_lessons_to_colab():
    rows = course.lesson_table_markdown().splitlines()
    assert rows[0] == "| # | Lesson | What you learn | Status |"
    assert rows[1] == "|---|---|---|---|"
    for row, item in zip(rows[2:], course.LESSONS, strict=True):
        assert row.startswith(f"| {item.number:02d} | ") and f"(`{item.stem}`)" in row
        if item.planned:
            assert "colab.research.google.com" not in row and row.endswith("| planned |")
        else:
            assert f"[{item.title}]({course.colab_url(item.path)})" in row and row.endswith("| available |")


def test_setup_cell_is_python_that_clones_this_repo_and_branch():
    cell = course.colab_setup_cell()
    compile(cell, "<colab setup cell>", "exec")
    assert f'"{course.clone_url()}"' in cell and f'"--branch", "{course.BRANCH}"' in cell
    assert '"google.colab" in sys.modules' in cell  # does nothing outside Colab
    assert "COLDLIB_DATA_DIR" in cell and "COLDLIB_CHECKPOINT_DIR" in cell


def test_setup_cell_does_nothing_outside_colab(monkeypatch):
    assert "google.colab" not in sys.modules
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.delenv("COLDLIB_DATA_DIR", raising=False)
    monkeypatch.delenv("COLDLIB_CHECKPOINT_DIR", raising=False)
    exec(compile(course.colab_setup_cell(), "<colab setup cell>", "exec"), {})
    assert calls == []
    assert "COLDLIB_DATA_DIR" not in os.environ and "COLDLIB_CHECKPOINT_DIR" not in os.environ
