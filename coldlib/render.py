"""Render the lessons: run each one in full mode and keep its outputs, so that GitHub, Colab and nbviewer show
every figure and table before anyone runs a cell.

``make render`` (or ``python -m coldlib.render [NN ...]``) does, for each lesson ``notebooks/NN_title.py``:

1. builds the notebook from the ``.py`` (the reviewed source) and executes it top to bottom with nbclient, in
   full mode (``COLDLIB_FAST`` unset), with fixed seeds (every lesson seeds itself; ``PYTHONHASHSEED=0``) and
   progress bars off (``TQDM_DISABLE=1``: a bar is a live widget, in a saved page it is only noise);
2. writes the measured wall time into the header's ``**Run time:**`` line, in the ``.py`` and the notebook;
3. replaces machine paths in the outputs by placeholders (:data:`PLACEHOLDERS`): the repository, the data and
   checkpoint folders, the Python environment, the temporary folder and the home folder; and removes any
   progress bar that ignored ``TQDM_DISABLE`` (a saved bar is a frozen widget showing a stale count);
4. records in the notebook's metadata (:data:`RENDER_KEY`) the SHA-256 of the ``.py`` it was rendered from,
   the wall time, the machine and the versions, and writes the ``.ipynb``.

:func:`render_problems` is what CI checks, cheaply and without executing anything: the render is of the current
``.py``, complete (every code cell ran), free of errors, machine paths, tokens, progress bars and widget state, within
:data:`OUTPUT_BUDGET_BYTES`, and its header states the measured time, within :data:`TIME_BUDGET_SECONDS`.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RENDER_KEY", "RUN_TIME_LINE", "OUTPUT_BUDGET_BYTES", "TIME_BUDGET_SECONDS", "PLACEHOLDERS",
           "source_sha256", "format_seconds", "run_time_line", "machine_description", "output_bytes",
           "render_problems", "render_lesson", "main"]

RENDER_KEY = "coldlib_render"
"""The notebook-metadata key that holds what the render recorded."""

RUN_TIME_LINE = re.compile(r"^(?P<prefix>(?:# )?)\*\*Run time:\*\*.*$", re.MULTILINE)
"""The header line the render rewrites (in the ``.py`` it is a comment line, ``# **Run time:** ...``)."""

OUTPUT_BUDGET_BYTES = 1_500_000
"""At most this many bytes of outputs per lesson (images counted as their decoded bytes)."""

TIME_BUDGET_SECONDS = 600
"""Every lesson runs in full mode within 10 minutes on the reference 2-core CPU."""

PLACEHOLDERS = {"repo": "<repo>", "data": "$COLDLIB_DATA_DIR", "checkpoints": "$COLDLIB_CHECKPOINT_DIR",
                "env": "<python-env>", "tmp": "<tmp>", "home": "~"}
"""What each machine path is replaced by in the rendered outputs."""

# Paths that name one machine (and tokens that must never be published); checked in every rendered output.
_MACHINE_PATH = re.compile(r"(?<![\w.<$~])(/work/|/home/|/Users/|/root/|/tmp/|/var/folders/|/private/|"
                           r"[A-Za-z]:\\\\?Users\\\\?)")
_TOKEN = re.compile(r"(token=[0-9a-f]{16,}|ghp_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,})")
# A tqdm bar saved as a widget: its text shows a frozen count ("evaluating:   0%|          | 0/1 [...]").
_PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+\s*\[")
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_TEXT_TYPES = ("text/plain", "text/markdown", "text/html", "text/latex", "application/javascript")


def source_sha256(py_text: str) -> str:
    """SHA-256 of a lesson's ``.py`` source (line endings normalised, so a Windows checkout agrees)."""
    return hashlib.sha256(py_text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def format_seconds(seconds: float) -> str:
    """``42 s``, ``4 min 07 s``."""
    whole = int(round(seconds))
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


def run_time_line(seconds: float, machine: str, date: str) -> str:
    """The header line a render writes (without the ``# `` of the ``.py``)."""
    return (f"**Run time:** {format_seconds(seconds)} for the whole lesson in full mode on {machine}, measured "
            f"by `make render` on {date}.")


def machine_description() -> str:
    """The CPU model and its logical cores, and the GPU if torch sees one, e.g. for a render's metadata."""
    cpu = platform.processor() or platform.machine()
    try:  # Linux: the model name is more telling than the architecture
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover - coldlib needs torch
        pass
    return f"a {os.cpu_count()}-core CPU ({cpu}), {gpu}"


def output_bytes(nb: dict) -> int:
    """Bytes the outputs take, images counted decoded (what a clone stores, give or take compression)."""
    total = 0
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if "text" in out:
                total += len("".join(out["text"]).encode("utf-8"))
            for mime, value in out.get("data", {}).items():
                text = "".join(value) if isinstance(value, list) else (
                    value if isinstance(value, str) else json.dumps(value))
                if mime.startswith("image/") and mime != "image/svg+xml":
                    total += len(base64.b64decode(text))
                else:
                    total += len(text.encode("utf-8"))
            if out.get("output_type") == "error":
                total += len("".join(out.get("traceback", [])).encode("utf-8"))
    return total


def _is_progress_bar(out: dict) -> bool:
    data = out.get("data", {})
    text = data.get("text/plain", "")
    return _WIDGET_VIEW in data and bool(_PROGRESS_BAR.search("".join(text) if isinstance(text, list) else text))


def _output_texts(nb: dict):
    """(cell index, text) of every textual output."""
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if "text" in out:
                yield i, "".join(out["text"])
            for mime in _TEXT_TYPES:
                if mime in out.get("data", {}):
                    value = out["data"][mime]
                    yield i, "".join(value) if isinstance(value, list) else str(value)


def _as_notebook(ipynb_text: Any) -> dict:
    """The parsed notebook; ``ValueError`` if ``ipynb_text`` is not the JSON of a Jupyter notebook (nbformat 4)."""
    fix = "pass the text of a rendered lesson's .ipynb (e.g. Path('notebooks/01_....ipynb').read_text())"
    if not isinstance(ipynb_text, str):
        raise ValueError(f"render_problems needs the notebook's text (a str); got {type(ipynb_text).__name__}; {fix}.")
    try:
        nb = json.loads(ipynb_text)
    except json.JSONDecodeError as e:
        raise ValueError(f"this is not a Jupyter notebook: not JSON ({e}; it starts {ipynb_text[:40]!r}); "
                         f"{fix}.") from e
    except RecursionError as e:
        raise ValueError(f"this is not a Jupyter notebook: its JSON nests too deeply to read; {fix}.") from e
    cells = nb.get("cells") if isinstance(nb, dict) else None
    why = ("its JSON is not an object" if not isinstance(nb, dict) else
           "it has no 'cells' list" if not isinstance(cells, list) else
           "its 'metadata' is not an object" if not isinstance(nb.get("metadata", {}), dict) else None)
    for i, cell in enumerate(cells if why is None else []):
        outputs = cell.get("outputs", []) if isinstance(cell, dict) else None
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("data", {}), dict)
                                                    for o in outputs):
            why = f"cell {i} is not a notebook cell (an object whose 'outputs' is a list of objects)"
            break
    if why:
        raise ValueError(f"this is not a Jupyter notebook: {why}; {fix}.")
    return nb


def render_problems(ipynb_text: str, py_text: str) -> list[str]:
    """Why a committed notebook is not a fresh, clean render of ``py_text`` ([] if it is).

    ``ValueError`` if ``ipynb_text`` is not a notebook at all (not JSON, or not shaped like one).
    """
    nb = _as_notebook(ipynb_text)
    meta = nb.get("metadata", {}).get(RENDER_KEY)
    if meta is not None and not isinstance(meta, dict):
        return [f"the '{RENDER_KEY}' metadata is a {type(meta).__name__}, not the render's record: run `make render`"]
    if not meta:
        return [f"no '{RENDER_KEY}' metadata: the notebook was not rendered (run `make render`)"]
    problems = []
    if meta.get("source_sha256") != source_sha256(py_text):
        problems.append("rendered from another version of the .py (its SHA-256 differs): run `make render`")
    if meta.get("mode") != "full":
        problems.append(f"rendered in {meta.get('mode')!r} mode; renders are in full mode")
    if "widgets" in nb.get("metadata", {}):
        problems.append("notebook metadata holds 'widgets' state (bloat; the render does not store it)")
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("execution_count") is None:
            problems.append(f"cell {i} did not run (no execution_count)")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i} holds an error output: {out.get('ename')}: {out.get('evalue')}")
            if _is_progress_bar(out):
                problems.append(f"cell {i} holds a saved progress bar (a frozen widget; the render turns bars off)")
    for i, text in _output_texts(nb):
        if m := _MACHINE_PATH.search(text):
            problems.append(f"cell {i} output names a machine path: ...{text[max(0, m.start() - 30):m.end() + 40]!r}")
        if m := _TOKEN.search(text):
            problems.append(f"cell {i} output holds something like a token ({m.group(0)[:10]}...)")
    size = output_bytes(nb)
    if size > OUTPUT_BUDGET_BYTES:
        problems.append(f"outputs take {size:,} bytes, over the budget of {OUTPUT_BUDGET_BYTES:,}")
    seconds = meta.get("seconds")
    if not isinstance(seconds, (int, float)):
        problems.append("the render recorded no wall time")
    else:
        if seconds > TIME_BUDGET_SECONDS:
            problems.append(f"the lesson took {format_seconds(seconds)} in full mode, over the budget of "
                            f"{format_seconds(TIME_BUDGET_SECONDS)}: make a long part optional or load a checkpoint")
        expected = run_time_line(seconds, meta.get("machine", "?"), meta.get("date", "?"))
        if expected not in py_text:
            problems.append(f"the header does not state the measured time; expected the line {expected!r}")
    return problems


# --- rendering ----------------------------------------------------------------------------------------------

def _placeholders(repo: Path) -> list[tuple[str, str]]:
    """(machine path, placeholder), longest path first so that nested folders get the specific placeholder."""
    found = {str(repo.resolve()): PLACEHOLDERS["repo"], sys.prefix: PLACEHOLDERS["env"],
             str(Path(tempfile.gettempdir()).resolve()): PLACEHOLDERS["tmp"], str(Path.home()): PLACEHOLDERS["home"]}
    for var, key in [("COLDLIB_DATA_DIR", "data"), ("COLDLIB_CHECKPOINT_DIR", "checkpoints")]:
        if os.environ.get(var):
            found[str(Path(os.environ[var]).resolve())] = PLACEHOLDERS[key]
            found[os.environ[var]] = PLACEHOLDERS[key]
    found.pop("/", None)
    pairs = [(p.rstrip("/"), v) for p, v in found.items() if p.strip("/")]
    return sorted(pairs, key=lambda pv: len(pv[0]), reverse=True)


def _drop_progress_bars(nb: Any) -> int:
    """Remove saved tqdm bars (frozen widgets; the render sets TQDM_DISABLE, this catches bars that ignore it)."""
    dropped = 0
    for cell in nb.cells:
        if cell.get("outputs"):
            kept = [out for out in cell.outputs if not _is_progress_bar(out)]
            dropped += len(cell.outputs) - len(kept)
            cell.outputs = kept
    return dropped


def _redact(nb: Any, pairs: list[tuple[str, str]]) -> None:
    def fix(text: str) -> str:
        for path, placeholder in pairs:
            text = text.replace(path, placeholder)
        return text

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = fix(out["text"])
            if "traceback" in out:
                out["traceback"] = [fix(line) for line in out["traceback"]]
            for mime in _TEXT_TYPES:
                if mime in out.get("data", {}) and isinstance(out["data"][mime], str):
                    out["data"][mime] = fix(out["data"][mime])


@dataclass
class RenderResult:
    stem: str
    seconds: float
    output_bytes: int
    slowest: list[tuple[float, int, str]]  # (seconds, cell index, first line)


def _cell_seconds(cell: Any) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    try:
        start = _dt.datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
        end = _dt.datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def render_lesson(py_path: Path, *, repo: Path, timeout: int | None = None) -> RenderResult:
    """Execute ``py_path`` in full mode and write its rendered ``.ipynb`` (and the ``.py`` header's run time)."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    import coldlib
    import torch

    py_path = py_path.resolve()
    ipynb_path = py_path.with_suffix(".ipynb")
    nb = jupytext.read(py_path)
    env_before = {k: os.environ.get(k) for k in ("COLDLIB_FAST", "TQDM_DISABLE", "PYTHONHASHSEED")}
    os.environ.pop("COLDLIB_FAST", None)  # full mode, whatever the caller's shell says
    os.environ.update(TQDM_DISABLE="1", PYTHONHASHSEED="0")
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                                store_widget_state=False, resources={"metadata": {"path": str(py_path.parent)}})
        begin = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - begin
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    slowest = []
    for i, cell in enumerate(nb.cells):
        took = _cell_seconds(cell)
        cell.metadata.pop("execution", None)  # per-cell timestamps: noise in every diff
        if took is not None:
            slowest.append((took, i, cell.source.splitlines()[0][:60] if cell.source else ""))
        cell["id"] = hashlib.sha1(f"{i}:{cell.cell_type}:{cell.source}".encode()).hexdigest()[:8]  # stable ids
    _drop_progress_bars(nb)
    _redact(nb, _placeholders(repo))

    machine = machine_description()
    date = _dt.date.today().isoformat()
    line = run_time_line(seconds, machine, date)
    py_text = py_path.read_text(encoding="utf-8")
    if not RUN_TIME_LINE.search(py_text):
        raise ValueError(f"{py_path.name}: its header has no '**Run time:**' line for the render to fill in; "
                         f"add '# **Run time:** not measured yet.' to the first markdown cell.")
    py_text = RUN_TIME_LINE.sub(lambda m: m.group("prefix") + line, py_text, count=1)
    py_path.write_text(py_text, encoding="utf-8")
    header = next(c for c in nb.cells if c.cell_type == "markdown")
    header.source = RUN_TIME_LINE.sub(lambda m: m.group("prefix") + line, header.source, count=1)

    previous = json.loads(ipynb_path.read_text(encoding="utf-8")).get("metadata", {}) if ipynb_path.exists() else {}
    metadata = {k: copy.deepcopy(v) for k, v in previous.items() if k not in (RENDER_KEY, "widgets")}
    metadata.setdefault("jupytext", {"formats": "ipynb,py:percent"})
    metadata["kernelspec"] = nb.metadata.get("kernelspec", metadata.get("kernelspec"))
    if "language_info" in nb.metadata:
        metadata["language_info"] = nb.metadata["language_info"]
    metadata[RENDER_KEY] = {"source_sha256": source_sha256(py_text), "mode": "full", "seconds": round(seconds, 1),
                            "machine": machine, "date": date, "python": platform.python_version(),
                            "torch": torch.__version__, "coldlib": coldlib.__version__,
                            "redacted": sorted(set(PLACEHOLDERS.values()))}
    nb.metadata = nbformat.from_dict(metadata)
    nbformat.write(nb, ipynb_path)
    problems = render_problems(ipynb_path.read_text(encoding="utf-8"), py_text)
    if problems:
        raise RuntimeError(f"{ipynb_path.name} was rendered but is not clean:\n  " + "\n  ".join(problems))
    return RenderResult(py_path.stem, seconds, output_bytes(nb), sorted(slowest, reverse=True)[:5])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coldlib.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers or stems (e.g. 03 or 03_sampling_naive_vs_improved); "
                                                   "default: all")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="the lessons' folder")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: no limit)")
    args = parser.parse_args(argv)
    scripts = sorted(args.notebooks.glob("[0-9][0-9]_*.py"))
    if not scripts:
        parser.error(f"no lessons (NN_title.py) in {args.notebooks}: run from the repository root")
    chosen = [p for p in scripts if not args.lessons or any(p.stem == a or p.stem[:2] == a for a in args.lessons)]
    unknown = [a for a in args.lessons if not any(p.stem == a or p.stem[:2] == a for p in scripts)]
    if unknown:
        parser.error(f"unknown lesson(s) {', '.join(unknown)}; known: {', '.join(p.stem for p in scripts)}")
    repo = args.notebooks.resolve().parent
    total, failed = 0.0, []
    for py in chosen:
        print(f"[render] {py.stem} ...", flush=True)
        try:
            result = render_lesson(py, repo=repo, timeout=args.timeout)
        except Exception as err:  # one failed lesson must not stop the others (a render takes minutes)
            failed.append(py.stem)
            print(f"[render] {py.stem} FAILED: {type(err).__name__}: {err}", flush=True)
            continue
        total += result.seconds
        print(f"[render] {result.stem}: {format_seconds(result.seconds)}, outputs {result.output_bytes / 1e6:.2f} MB; "
              f"slowest cells: " + "; ".join(f"{s:.0f} s cell {i} ({src})" for s, i, src in result.slowest),
              flush=True)
    print(f"[render] {len(chosen) - len(failed)} lesson(s) in {format_seconds(total)} on {machine_description()}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
