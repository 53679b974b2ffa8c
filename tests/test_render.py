"""coldlib.render: the checks CI applies to the committed renders must catch each way a render can be stale or
unclean, and a real render of a small lesson must pass them (its outputs redacted, its header timed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jupytext
import pytest

from coldlib import render
from coldlib.render import (OUTPUT_BUDGET_BYTES, RENDER_KEY, TIME_BUDGET_SECONDS, format_seconds, render_problems,
                            run_time_line, source_sha256)

MACHINE, DATE = "a 2-core CPU (test), no GPU", "2026-11-29"


def _lesson(seconds: float = 12.0) -> str:
    return f"""# %% [markdown]
# # 01 · Example
#
# {run_time_line(seconds, MACHINE, DATE)}

# %%
print("hello")
"""


def _rendered(py_text: str, seconds: float = 12.0, **changes) -> str:
    """The notebook a clean render of py_text would write; ``changes`` spoil one part of it."""
    nb = json.loads(jupytext.writes(jupytext.reads(py_text, fmt="py:percent"), fmt="ipynb"))
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 1
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": changes.get("text", "hello\n")}]
    nb["metadata"][RENDER_KEY] = {"source_sha256": source_sha256(changes.get("hashed", py_text)),
                                  "mode": changes.get("mode", "full"), "seconds": seconds, "machine": MACHINE,
                                  "date": DATE}
    if changes.get("error"):
        code["outputs"].append({"output_type": "error", "ename": "ValueError", "evalue": "boom", "traceback": []})
    if changes.get("widgets"):
        nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    if changes.get("bar"):
        code["outputs"].append({"output_type": "display_data", "metadata": {}, "data": {
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
            "text/plain": "evaluating:   0%|          | 0/1 [00:00<?, ?batch/s]"}})
    if changes.get("unexecuted"):
        code["execution_count"] = None
    return json.dumps(nb)


def test_a_clean_render_passes():
    assert render_problems(_rendered(_lesson()), _lesson()) == []


@pytest.mark.parametrize("spoil, expected", [
    (dict(hashed=_lesson() + "\n# %%\nx = 1\n"), "another version of the .py"),
    (dict(mode="fast"), "'fast' mode"),
    (dict(error=True), "error output: ValueError: boom"),
    (dict(widgets=True), "'widgets' state"),
    (dict(unexecuted=True), "did not run"),
    (dict(bar=True), "saved progress bar"),
    (dict(text="read /work/main/data/MNIST\n"), "machine path"),
    (dict(text="loaded /home/alice/x.pt\n"), "machine path"),
    (dict(text="http://localhost:8888/?token=0123456789abcdef0123\n"), "token"),
    (dict(text="x" * (OUTPUT_BUDGET_BYTES + 1)), "over the budget"),
], ids=["stale-source", "fast-mode", "error", "widget-state", "unexecuted", "progress-bar", "work-path", "home-path", "token",
        "too-big"])
def test_each_problem_is_caught(spoil, expected):
    problems = render_problems(_rendered(_lesson(), **spoil), _lesson())
    assert any(expected in p for p in problems), problems


def test_placeholders_are_not_machine_paths():
    text = "read $COLDLIB_DATA_DIR/MNIST/raw and <repo>/data/checkpoints/mnist_blur.json, ~/x and <tmp>/y\n"
    assert render_problems(_rendered(_lesson(), text=text), _lesson()) == []


def test_header_must_state_the_measured_time():
    stale_header = _lesson(seconds=99)  # the header says 99 s, the render measured 12 s
    problems = render_problems(_rendered(stale_header, seconds=12.0), stale_header)
    assert any("does not state the measured time" in p for p in problems), problems


def test_a_lesson_over_the_time_budget_is_refused():
    slow = _lesson(seconds=TIME_BUDGET_SECONDS + 1)
    problems = render_problems(_rendered(slow, seconds=TIME_BUDGET_SECONDS + 1), slow)
    assert any("over the budget of 10 min 00 s" in p for p in problems), problems


def test_an_unrendered_notebook_says_how_to_render():
    plain = jupytext.writes(jupytext.reads(_lesson(), fmt="py:percent"), fmt="ipynb")
    assert "make render" in render_problems(plain, _lesson())[0]


def test_format_seconds():
    assert [format_seconds(s) for s in (4.4, 59.6, 60, 247, 785)] == ["4 s", "1 min 00 s", "1 min 00 s",
                                                                        "4 min 07 s", "13 min 05 s"]


@pytest.mark.slow
def test_render_lesson_end_to_end(tmp_path, monkeypatch):
    """A real kernel runs a small lesson: full mode, outputs redacted, header timed, .py hash recorded."""
    repo = tmp_path / "course"
    (repo / "notebooks").mkdir(parents=True)
    data = tmp_path / "somewhere" / "data"
    data.mkdir(parents=True)
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(data))
    monkeypatch.setenv("COLDLIB_FAST", "1")  # the render must ignore it
    script = repo / "notebooks" / "01_example.py"
    script.write_text("""# %% [markdown]
# # 01 · Example
#
# **Run time:** not measured yet.

# %%
import os
from pathlib import Path
print(os.environ["COLDLIB_DATA_DIR"] + "/MNIST", Path.cwd().parent, "FAST" in os.environ)

# %%
from coldlib.env import progress_bars
from tqdm.auto import tqdm
sum(tqdm(range(3), disable=False)), progress_bars(True)  # a bar that ignores TQDM_DISABLE, and coldlib's switch
""", encoding="utf-8")
    result = render.render_lesson(script, repo=repo, timeout=120)

    py_text = script.read_text(encoding="utf-8")
    nb = json.loads(script.with_suffix(".ipynb").read_text(encoding="utf-8"))
    printed = "".join(nb["cells"][1]["outputs"][0]["text"])
    assert printed == "$COLDLIB_DATA_DIR/MNIST <repo> False\n"  # paths redacted; COLDLIB_FAST not passed on
    bar_cell = nb["cells"][2]["outputs"]
    assert [o["output_type"] for o in bar_cell] == ["execute_result"]  # the bar is gone, the result stays
    assert "".join(bar_cell[0]["data"]["text/plain"]) == "(3, False)"  # coldlib's bars are off in a render
    assert f"# {run_time_line(result.seconds, render.machine_description(), nb['metadata'][RENDER_KEY]['date'])}" \
        in py_text.splitlines()
    assert nb["metadata"][RENDER_KEY]["source_sha256"] == source_sha256(py_text)
    assert render_problems(json.dumps(nb), py_text) == []
    assert os.environ["COLDLIB_FAST"] == "1"  # the caller's environment is restored
    assert Path(script).with_suffix(".ipynb").exists() and result.output_bytes > 0
