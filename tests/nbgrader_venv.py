"""nbgrader in a virtual environment of its own, build/nbgrader-venv (gitignored): built on first use by
tests/test_nbgrader_interop.py (about a minute, ~340 MB from the package registry), reused afterwards.

Why not in .venv: nbgrader 0.9.6 requires ipywidgets, and where ipywidgets is importable tqdm.auto
draws widget progress bars in notebooks instead of text, so the committed notebooks would no longer
compare under strict nbval. Here ipywidgets lives only in this venv.

The course's packages (torch, mgca_lite, ...) are not installed a second time: after nbgrader is
installed (so that pip resolves its dependencies in this venv alone and never touches .venv), a .pth
file in this venv's site-packages adds the course venv's site-packages behind its own, with
site.addsitedir so that the .pth files there (mgca_lite's editable install) are honoured too.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "build" / "nbgrader-venv"
REQUIREMENT = "nbgrader==0.9.6"
PTH_NAME = "mgca_course_venv.pth"
READY = ("import importlib.util as u, nbgrader; assert nbgrader.__version__ == '0.9.6', nbgrader.__version__; "
         "assert u.find_spec('mgca_lite') and u.find_spec('torch'), 'the course packages are not importable'")
# What pip prints when no index answered at all (offline, registry unreachable): then skip, not fail.
UNREACHABLE = ("from versions: none", "Failed to establish a new connection", "Temporary failure in name resolution")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, capturing its output as text (never raises on a non-zero exit)."""
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          **kwargs)


def link_course_packages(python: Path) -> None:
    """(Re)write the .pth that puts this process's site-packages (the course .venv) behind the venv's own."""
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    course = sysconfig.get_path("purelib")
    (Path(purelib) / PTH_NAME).write_text(f"import site; site.addsitedir({course!r})\n", encoding="utf-8")


def nbgrader_python(venv: Path = VENV) -> Path:
    """The python of a venv with nbgrader 0.9.6 and the course's packages; builds the venv when missing
    or broken. Fails the test when the venv cannot be built, skips it when the registry is unreachable."""
    python = venv_python(venv)
    if python.exists():
        link_course_packages(python)                  # cheap, and follows a clone that moved
        if run([python, "-c", READY]).returncode == 0:
            return python
        shutil.rmtree(venv)                           # half-built or broken: build it again
    venv.parent.mkdir(parents=True, exist_ok=True)
    made = run([sys.executable, "-m", "venv", venv])
    if made.returncode:
        pytest.fail(f"python -m venv {venv} failed:\n{made.stderr[-2000:]}")
    pip = run([python, "-m", "pip", "install", "-qq", "--disable-pip-version-check", "--retries", "2", REQUIREMENT])
    if pip.returncode:
        shutil.rmtree(venv)                           # so the next run starts clean
        log = (pip.stdout + pip.stderr)[-2000:]
        if any(sign in log for sign in UNREACHABLE):
            pytest.skip(f"{REQUIREMENT} could not be downloaded (is the package registry reachable?): "
                        f"{log.strip().splitlines()[-1]}")
        pytest.fail(f"pip install {REQUIREMENT} into {venv} failed:\n{log}")
    link_course_packages(python)
    ready = run([python, "-c", READY])
    if ready.returncode:
        pytest.fail(f"{venv}: nbgrader or the course packages do not import:\n{ready.stderr[-2000:]}")
    return python
