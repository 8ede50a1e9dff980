"""The package as pip installs it: from a wheel of this checkout, run from outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SEEDS


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install --no-deps --target DIR .`: the package and its `qa` script, dependencies from this venv."""
    # From a copy, so that the build's own folders (build/, qa.egg-info/) are never written into the checkout.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "qa", source / "qa", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(source)],
        check=True, capture_output=True, text=True,
    )
    return target


def _run(installed: Path, cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    # Only the installed copy of qa is importable: the checkout is not on the path and not the working folder.
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1", "QA_CACHE": str(cwd / "cache")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_the_installed_qa_command_builds_and_answers(installed: Path, tmp_path: Path) -> None:
    script = installed / "bin" / "qa"
    assert script.is_file()
    where = _run(installed, tmp_path, sys.executable, "-c", "import qa, qa.web.chat; print(qa.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed)
    built = _run(installed, tmp_path, sys.executable, str(script), "build", "--seeds", str(SEEDS), "--index", "index")
    assert built.returncode == 0, built.stderr
    asked = _run(installed, tmp_path, sys.executable, str(script), "ask", "Who chairs the Senate Judiciary Committee?")
    assert asked.returncode == 0, asked.stderr
    assert "chairman of the Senate Judiciary Committee" in asked.stdout and "chars " in asked.stdout


def test_app_py_starts_the_installed_web_chat(installed: Path, tmp_path: Path) -> None:
    """`python app.py --help` from the checkout and `python -m qa.web --help` from the install print the same."""
    from_checkout = subprocess.run(
        [sys.executable, str(REPO / "app.py"), "--help"], capture_output=True, text=True, check=False, cwd=REPO
    )
    installed_help = _run(installed, tmp_path, sys.executable, "-m", "qa.web", "--help")
    assert from_checkout.returncode == installed_help.returncode == 0, from_checkout.stderr + installed_help.stderr
    assert "--allow-rebuild" in from_checkout.stdout
    assert from_checkout.stdout.split("options:", 1)[1] == installed_help.stdout.split("options:", 1)[1]
