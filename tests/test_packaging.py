"""A plain (not editable) ``pip install`` of the project finds its presets and its tables.

The wheel is built from a copy of the package and installed with ``pip`` into a fresh
virtual environment; its dependencies (torch, ...) come from this environment's
site-packages through a path line, so nothing is downloaded. The check then runs from a
folder outside the checkout, where only the installed copy can be imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

CHECK = """
import sys
import dgqa_ray
from dgqa_ray.config import load_config, list_presets
from dgqa_ray.distortions import DISTORTIONS
from dgqa_ray.reports import reference_dir

print(dgqa_ray.__file__)
print(sorted(list_presets()))
assert load_config("demo").run_name == "demo"
assert load_config("paper").model.backbone == "resnet50"
assert len(DISTORTIONS) == 25
assert sorted(p.name for p in reference_dir().glob("paper_table*.csv"))
"""


def _run(cmd, **kwargs):
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f"{cmd[:4]} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def test_pip_install_dot_finds_the_presets_from_another_folder(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    shutil.copytree(
        REPO / "dgqa_ray", source / "dgqa_ray", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source)])
    (wheel,) = wheels.glob("dgqa_ray-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
    )
    # Dependencies from this environment, as a plain path: its .pth files (this checkout's
    # editable install among them) are not processed, so dgqa_ray is not importable from it.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = _run([str(python), "-c", CHECK], cwd=elsewhere, env=env)
    installed, presets = out.stdout.strip().splitlines()[-2:]
    assert Path(installed).resolve().is_relative_to(site.resolve()), installed
    assert {"demo", "paper"} <= set(eval(presets))  # a printed list of names
