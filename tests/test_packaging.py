"""A regular wheel carries what the product needs at run time, and every console script exists.

(``.ci/run`` also installs the wheel into a fresh venv outside the repository and runs the demo.)
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]


def _scripts() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("name", sorted(_scripts()))
def test_every_console_script_resolves(name):
    module, _, attr = _scripts()[name].partition(":")
    assert callable(getattr(importlib.import_module(module), attr)), name


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_holds_profiles_assets_and_both_packages(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "runs"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w",
                        str(tmp_path / "dist")], capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [p.relative_to(REPO).as_posix() for folder in ("eegmamba/assets", "eegmamba/profiles")
              for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    needed += ["realtime/cli_live.py", "eegmamba/training/cli_train.py"]
    assert needed and not [n for n in needed if n not in names], sorted(set(needed) - names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry).decode()
    assert all(f"{k} = {v}" in text for k, v in _scripts().items()), text
