"""environment.yml (conda) and pyproject.toml (pip) must list the same packages and pins."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_environment_and_pyproject_list_the_same_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_reqs = [r for r in pip_section if not r.startswith("-e")]
    assert sorted(pip_reqs) == sorted(conda_reqs), "pins differ between pyproject.toml and environment.yml"
    assert {_name(r) for r in pip_reqs} == {_name(r) for r in conda_reqs}
    assert "python=3.11" in env["dependencies"]
    assert any(r.startswith("-e") and "[dev]" in r for r in pip_section), "environment.yml must install the package with its dev extras"


def test_torch_pins_are_the_offline_wheels():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.14.1" in project["dependencies"]
    assert "torchvision==0.29.1" in project["dependencies"]
