"""The distribution holds every package of the tree: pyproject's package finding covers subpackages."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[2]
ROOTS = {
    "describer": REPO,
    "endpoint": REPO,
    "training": REPO,
    "describer_rules": REPO / "functions",
    "describer_aws": REPO / "functions",
    "describer_steps": REPO / "functions",
}


def test_every_package_and_subpackage_is_found() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = {
        package
        for where in config["where"]
        for package in find_packages(REPO / where, include=config["include"])
    }
    in_tree = {
        ".".join(init.parent.relative_to(root).parts)
        for name, root in ROOTS.items()
        for init in (root / name).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert "describer.local.model_host" in in_tree and "describer.sagemaker" in in_tree
    assert found == in_tree
