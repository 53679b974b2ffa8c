"""environment.yml (conda users) must declare the same packages and lower bounds as pyproject.toml (pip users).

The comparison lives in `compare()`, which returns a list of problems; the tests check that the
repository's two files agree and that `compare()` really reports deliberately broken copies.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# PyPI name -> conda-forge name, where they differ. Everything else is expected under its PyPI name.
CONDA_NAME = {"torch": "pytorch"}
# Conda entries with no pyproject counterpart.
CONDA_ONLY = {"python", "pip"}
# The pip section must install coldlib itself from the repository root.
EDITABLE_SELF = {"-e .", "--editable ."}

_SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*(?:;.*)?$")
_LOWER = re.compile(r">=\s*([0-9][^,\s;]*)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'torch>=2.2' or 'pytorch >=2.2' -> ('torch', '2.2'); no lower bound -> (name, None)."""
    m = _SPEC.match(spec)
    if not m:
        raise ValueError(f"cannot parse requirement {spec!r}")
    name, rest = m.groups()
    lower = _LOWER.search(rest)
    return _norm(name), (lower.group(1) if lower else None)


def load_pyproject(path: Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def load_env(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def compare(pyproject: dict, env: dict) -> list[str]:
    """Every way environment.yml disagrees with pyproject.toml, as readable messages ([] = consistent)."""
    problems: list[str] = []
    project = pyproject["project"]
    wanted = {}  # conda name -> (pypi spec, lower bound)
    for spec in project.get("dependencies", []) + project.get("optional-dependencies", {}).get("dev", []):
        name, lower = parse_spec(spec)
        if lower is None:
            problems.append(f"pyproject: {spec!r} has no lower bound (>=)")
        wanted[_norm(CONDA_NAME.get(name, name))] = (spec, lower)

    conda = {}  # conda name -> lower bound
    pip_section: list[str] = []
    for entry in env.get("dependencies") or []:
        if isinstance(entry, dict):
            pip_section.extend(entry.get("pip") or [])
            continue
        name, lower = parse_spec(str(entry))
        conda[name] = lower

    for name, (spec, lower) in wanted.items():
        if name not in conda:
            problems.append(f"environment.yml: missing {name} (pyproject has {spec!r})")
        elif conda[name] != lower:
            problems.append(
                f"environment.yml: {name} lower bound {conda[name]!r} != pyproject {lower!r} ({spec!r})"
            )
    for name in sorted(set(conda) - set(wanted) - CONDA_ONLY):
        problems.append(f"environment.yml: {name} is not declared in pyproject (runtime or dev extra)")

    py_lower = _LOWER.search(project.get("requires-python", ""))
    py_lower = py_lower.group(1) if py_lower else None
    if "python" not in conda:
        problems.append("environment.yml: python is not listed")
    elif conda["python"] != py_lower:
        problems.append(f"environment.yml: python lower bound {conda['python']!r} != requires-python {py_lower!r}")

    if "pip" not in conda:
        problems.append("environment.yml: pip must be listed when a pip: section is used")
    if not any(" ".join(str(item).split()) in EDITABLE_SELF for item in pip_section):
        problems.append("environment.yml: the pip: section must contain '-e .' (coldlib itself)")
    return problems


def test_parse_spec():
    assert parse_spec("torch>=2.2") == ("torch", "2.2")
    assert parse_spec("pytorch >=2.2,<3") == ("pytorch", "2.2")
    assert parse_spec("scikit_image>=0.21") == ("scikit-image", "0.21")
    assert parse_spec("python>=3.10") == ("python", "3.10")  # compared as text: 3.10 is not 3.1
    assert parse_spec("pip") == ("pip", None)


def test_pyproject_and_environment_yml_agree():
    problems = compare(load_pyproject(ROOT / "pyproject.toml"), load_env(ROOT / "environment.yml"))
    assert not problems, "environment.yml and pyproject.toml disagree:\n  " + "\n  ".join(problems)


def _break_bound(env):
    deps = env["dependencies"]
    i = next(i for i, d in enumerate(deps) if isinstance(d, str) and d.startswith("pytorch"))
    deps[i] = "pytorch>=1.0"


def _drop_package(env):
    env["dependencies"] = [d for d in env["dependencies"] if not (isinstance(d, str) and d.startswith("nbval"))]


def _break_python(env):
    deps = env["dependencies"]
    i = next(i for i, d in enumerate(deps) if isinstance(d, str) and d.startswith("python"))
    deps[i] = "python>=3.9"


def _drop_editable(env):
    for d in env["dependencies"]:
        if isinstance(d, dict) and "pip" in d:
            d["pip"] = [p for p in d["pip"] if "-e" not in p]


def _add_stray(env):
    env["dependencies"].insert(0, "pandas>=2.0")


@pytest.mark.parametrize(
    "breaker, expected",
    [
        (_break_bound, "pytorch lower bound '1.0'"),
        (_drop_package, "missing nbval"),
        (_break_python, "python lower bound '3.9'"),
        (_drop_editable, "'-e .'"),
        (_add_stray, "pandas is not declared"),
    ],
    ids=["lower-bound", "missing-package", "python-bound", "no-editable-install", "undeclared-package"],
)
def test_compare_reports_a_broken_copy(tmp_path, breaker, expected):
    env = copy.deepcopy(load_env(ROOT / "environment.yml"))
    breaker(env)
    broken = tmp_path / "environment.yml"
    broken.write_text(yaml.safe_dump(env, sort_keys=False), encoding="utf-8")
    problems = compare(load_pyproject(ROOT / "pyproject.toml"), load_env(broken))
    assert any(expected in p for p in problems), problems


def test_compare_reports_a_changed_pyproject_bound(tmp_path):
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    spec = load_pyproject(ROOT / "pyproject.toml")["project"]["dependencies"][0]
    name, lower = parse_spec(spec)
    assert f'"{spec}"' in text
    broken = tmp_path / "pyproject.toml"
    broken.write_text(text.replace(f'"{spec}"', f'"{name}>=999"'), encoding="utf-8")
    problems = compare(load_pyproject(broken), load_env(ROOT / "environment.yml"))
    conda_name = CONDA_NAME.get(name, name)
    assert any(f"{conda_name} lower bound '{lower}' != pyproject '999'" in p for p in problems), problems
