"""The lock files in locks/ satisfy their inputs, and the Lambda bundle's pins are the tested versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCKS = REPO / "locks"
LAMBDA_REQUIREMENTS = REPO / "functions" / "requirements.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", flags=re.MULTILINE)


def locked_versions(lock: Path) -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in PIN.findall(lock.read_text())}


def requirements(path: Path) -> list[Requirement]:
    """The requirements of a requirements file, following its -r includes (not -c constraints)."""
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += requirements(path.parent / line.removeprefix("-r ").strip())
        elif line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [
        Requirement(text) for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    ]


def lock_inputs() -> list[tuple[str, list[Requirement]]]:
    """(lock name, what it must satisfy): locks/NAME.in, and for .venv's lock pyproject.toml too."""
    inputs = []
    for source in sorted(LOCKS.glob("*.in")):
        extra = project_requirements() if source.stem == "venv" else []
        inputs.append((source.stem, extra + requirements(source)))
    return inputs


def test_every_venv_input_has_its_lock() -> None:
    assert {name for name, _ in lock_inputs()} == {lock.stem for lock in LOCKS.glob("*.txt")}


@pytest.mark.parametrize(("venv", "wanted"), lock_inputs(), ids=[name for name, _ in lock_inputs()])
def test_the_lock_satisfies_its_inputs(venv: str, wanted: list[Requirement]) -> None:
    locked = locked_versions(LOCKS / f"{venv}.txt")
    unsatisfied = [
        str(requirement)
        for requirement in wanted
        if (requirement.marker is None or requirement.marker.evaluate())
        and not requirement.specifier.contains(locked.get(canonicalize_name(requirement.name), "0"), True)
    ]
    assert not unsatisfied, f"locks/{venv}.txt is stale for {unsatisfied}: run `make lock`"


@pytest.mark.parametrize("venv", ["venv", "venv-py313"])
def test_the_lambda_bundle_pins_are_the_tested_versions(venv: str) -> None:
    locked = locked_versions(LOCKS / f"{venv}.txt")
    for requirement in requirements(LAMBDA_REQUIREMENTS):
        [pin] = requirement.specifier
        assert pin.operator == "==", f"functions/requirements.txt pins exactly: {requirement}"
        assert locked[canonicalize_name(requirement.name)] == pin.version, requirement.name


def test_every_locked_package_is_hash_checked() -> None:
    for lock in LOCKS.glob("*.txt"):
        entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n\n", 1)[1])
        unhashed = [entry.split()[0] for entry in entries if "==" in entry and "--hash=sha256:" not in entry]
        assert not unhashed, f"{lock.name}: {unhashed}"


def test_the_project_venv_gets_the_cpu_build_of_torch() -> None:
    assert locked_versions(LOCKS / "venv.txt")["torch"].endswith("+cpu")
