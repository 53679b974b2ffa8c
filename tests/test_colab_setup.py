"""The lessons' Colab set-up cell, run for real in a fresh virtual environment that plays Colab.

"Colab" here is a new venv that sees this environment's packages (torch, torchvision, matplotlib,
ipywidgets, ...) the way Colab's runtime ships them, plus a fake ``google.colab`` module. The cell clones
the course from a local copy of this repository's last commit (instead of GitHub) into a temporary folder
(instead of /content), installs coldlib from the clone, and must leave coldlib importable, non-editable,
with the shipped checkpoints found, and without reinstalling any package "Colab" already had.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from coldlib import course

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("colab")
    remote = tmp / "remote.git"
    run(["git", "init", "--quiet", "--bare", str(remote)])
    run(["git", "-C", str(REPO), "push", "--quiet", str(remote), f"HEAD:refs/heads/{course.BRANCH}"])
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # Colab's preinstalled packages: this environment's site-packages, visible but not owned by the venv.
    (site / "colab_preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    before = set(os.listdir(site))
    cell = course.colab_setup_cell()
    cell = cell.replace(course.clone_url(), f"file://{remote}").replace("/content/cold-diffusion-course",
                                                                          str(tmp / "content" / "course"))
    script = textwrap.dedent("""
        import json, sys, types
        sys.modules["google.colab"] = types.ModuleType("google.colab")  # what Colab's runtime has loaded
        exec(compile(open(sys.argv[1]).read(), "setup_cell", "exec"))
        import os, coldlib
        from coldlib.shipped import checkpoint_dir
        from coldlib.env import data_dir
        from coldlib.evaluation import mnist_cnn_features
        from coldlib.evaluation.classifier import load_shipped_classifier
        load_shipped_classifier()
        print(json.dumps({"coldlib": coldlib.__file__, "checkpoints": str(checkpoint_dir()),
                          "data": str(data_dir())}))
    """)
    (tmp / "cell.py").write_text(cell)
    (tmp / "run.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDLIB_")}
    env.pop("PYTHONPATH", None)
    out = run([str(python), str(tmp / "run.py"), str(tmp / "cell.py")], env=env, cwd=tmp)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"tmp": tmp, "site": site, "before": before, "after": set(os.listdir(site)), **result}


@pytest.mark.slow
def test_coldlib_is_installed_from_the_clone_not_editable(colab):
    assert Path(colab["coldlib"]).is_relative_to(colab["site"]), colab["coldlib"]
    assert not any(name.startswith("__editable__") for name in colab["after"])


@pytest.mark.slow
def test_shipped_checkpoints_and_data_are_found_in_the_clone(colab):
    clone = colab["tmp"] / "content" / "course"
    assert Path(colab["checkpoints"]) == clone / "data" / "checkpoints"
    assert Path(colab["data"]) == clone / "data"


@pytest.mark.slow
def test_nothing_colab_ships_is_reinstalled(colab):
    added = {name.split("-")[0].lower() for name in colab["after"] - colab["before"]}
    assert "coldlib" in added
    shipped = {"torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "pillow", "tqdm"}
    assert not (added & shipped), f"the set-up cell reinstalled {added & shipped}"
