"""The emulator's error-type patch: applies to the pinned ministack only, and refuses anything else."""

from __future__ import annotations

import pytest
from ministack.core import lambda_runtime

from describer.local import emulator_patch
from describer.local.emulator_patch import UnsupportedEmulatorVersion


def test_the_pinned_version_is_the_installed_one() -> None:
    emulator_patch.check_version()


def test_another_version_is_refused_loudly() -> None:
    with pytest.raises(UnsupportedEmulatorVersion, match=r"1\.5\.34 is installed.*1\.5\.33 only"):
        emulator_patch.check_version("1.5.34")


def test_the_worker_reports_the_exception_class_name() -> None:
    patched = emulator_patch.typed_worker_script(lambda_runtime._PYTHON_WORKER_SCRIPT)
    assert patched.count('"errorType": type(e).__name__') == 1
    compile(patched, "worker", "exec")  # still a valid script


def test_a_worker_script_without_the_patched_line_is_refused() -> None:
    with pytest.raises(UnsupportedEmulatorVersion):
        emulator_patch.typed_worker_script("print('another worker')")
