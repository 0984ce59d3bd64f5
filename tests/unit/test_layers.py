"""The layers import one way (CONTRIBUTING.md "Layout"): benchmarks -> describer -> training -> endpoint ->
describer_rules, and the Lambdas' describer_steps -> describer_aws -> describer_rules. The pure rules import
no AWS SDK and no Powertools: the endpoint and training ship them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {
    "describer_rules": REPO / "functions" / "describer_rules",
    "describer_aws": REPO / "functions" / "describer_aws",
    "describer_steps": REPO / "functions" / "describer_steps",
    "endpoint": REPO / "endpoint",
    "training": REPO / "training",
    "describer": REPO / "describer",
}
# What each package must never import (the layers above it, and for the rules the AWS SDK).
FORBIDDEN = {
    "describer_rules": {
        "describer_aws",
        "describer_steps",
        "endpoint",
        "training",
        "describer",
        "benchmarks",
        "boto3",
        "botocore",
        "aws_lambda_powertools",
    },
    "describer_aws": {"describer_steps", "endpoint", "training", "describer", "benchmarks"},
    "describer_steps": {"endpoint", "training", "describer", "benchmarks"},
    "endpoint": {"describer_aws", "describer_steps", "training", "describer", "benchmarks"},
    "training": {"describer_aws", "describer_steps", "describer", "benchmarks"},
    "describer": {"benchmarks"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_imports_no_layer_above_it(package: str) -> None:
    offences = {
        str(path.relative_to(REPO)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in PACKAGES[package].rglob("*.py")
    }
    assert {path: names for path, names in offences.items() if names} == {}


def test_the_check_sees_an_import_that_breaks_the_layers(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import json\nfrom botocore.exceptions import ClientError\nfrom . import sibling\n")
    assert imported_roots(module) == {"json", "botocore"}
