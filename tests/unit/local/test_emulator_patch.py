"""The emulator patch (pinned ministack only): typed Lambda errors, run timeouts, map limit paths, YAML."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from ministack.core import lambda_runtime

from describer.local.emulator import patch as emulator_patch
from describer.local.emulator.patch import UnsupportedEmulatorVersion


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


# --- Step Functions: execution timeouts and the Distributed Map's ...Path limits ---------------------


def test_map_limits_are_read_from_the_input_through_their_paths() -> None:
    state = {
        "Type": "Map",
        "MaxConcurrencyPath": "$.limits.c",
        "ToleratedFailurePercentagePath": "$.limits.p",
    }
    effective = {"limits": {"c": 4, "p": 5}}
    resolved = emulator_patch.resolve_map_limits(
        state, effective, lambda path, data: data["limits"][path[-1]]
    )
    assert resolved == {"Type": "Map", "MaxConcurrency": 4, "ToleratedFailurePercentage": 5}
    assert "MaxConcurrencyPath" in state, "the definition itself is left as it was"
    assert emulator_patch.resolve_map_limits({"MaxConcurrency": 2}, {}, lambda p, d: None) == {
        "MaxConcurrency": 2
    }


def test_a_map_limit_path_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match=r"MaxConcurrencyPath.*'4'"):
        emulator_patch.resolve_map_limits({"MaxConcurrencyPath": "$.c"}, {"c": "4"}, lambda p, d: d["c"])


def test_a_running_execution_times_out_and_an_ended_one_is_left_alone() -> None:
    execution = {"status": "RUNNING"}
    assert emulator_patch.time_out(execution, 5, lambda: "2026-12-03T10:00:00Z")
    assert execution["status"] == "TIMED_OUT"
    assert (execution["error"], execution["stopDate"]) == ("States.Timeout", "2026-12-03T10:00:00Z")
    done = {"status": "SUCCEEDED"}
    assert not emulator_patch.time_out(done, 5, lambda: "later")
    assert done == {"status": "SUCCEEDED"}


def _machines(definition: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    execution = {"stateMachineArn": "sm", "status": "RUNNING"}
    return {"run-1": execution}, {"sm": {"definition": json.dumps(definition)}}


def test_a_run_longer_than_its_timeout_seconds_is_timed_out_while_it_runs() -> None:
    executions, machines = _machines({"TimeoutSeconds": 1, "StartAt": "A", "States": {}})
    timed_out: list[float] = []
    release = threading.Event()

    def on_timeout(execution: dict[str, Any], timeout_s: float) -> None:
        timed_out.append(timeout_s)
        release.set()

    def hanging_run(exec_arn: str) -> None:
        assert release.wait(10), "the timer never fired"

    run = emulator_patch.enforce_execution_timeout(hanging_run, executions, machines, on_timeout)
    started = time.monotonic()
    run("run-1")
    assert timed_out == [1]
    assert 0.9 <= time.monotonic() - started < 5


def test_a_run_that_ends_in_time_or_has_no_timeout_starts_no_timer() -> None:
    fired: list[float] = []
    for definition in ({"TimeoutSeconds": 1}, {}):
        executions, machines = _machines(definition)
        run = emulator_patch.enforce_execution_timeout(
            lambda arn: None, executions, machines, lambda e, s: fired.append(s)
        )
        run("run-1")
    time.sleep(1.3)
    assert fired == []


def test_the_patch_applies_to_the_pinned_step_functions_module() -> None:
    from ministack.services import stepfunctions

    names = ("_run_execution", "_fail_execution", "_run_distributed_map")
    originals = {name: getattr(stepfunctions, name) for name in names}
    try:
        emulator_patch._patch_step_functions()
        assert all(getattr(stepfunctions, name) is not originals[name] for name in names)
        # An ended run is not failed afterwards by a state that was still running.
        ended = {"status": "TIMED_OUT"}
        stepfunctions._fail_execution(ended, "States.TaskFailed", "late")
        assert ended == {"status": "TIMED_OUT"}
    finally:
        for name, original in originals.items():
            setattr(stepfunctions, name, original)


def test_a_yaml_definition_reaches_step_functions_as_json_with_its_substitutions() -> None:
    from ministack.services.cloudformation import provisioners

    original = provisioners._sfn_definition
    props = {
        "DefinitionString": "StartAt: Done\nTimeoutSeconds: ${Timeout}\nStates:\n  Done: {Type: Succeed}\n",
        "DefinitionSubstitutions": {"Timeout": "30"},
    }
    try:
        emulator_patch._patch_cloudformation()
        definition = json.loads(provisioners._sfn_definition(props))
        # A JSON definition passes unchanged.
        assert provisioners._sfn_definition({"DefinitionString": '{"StartAt": "A"}'}) == '{"StartAt": "A"}'
    finally:
        provisioners._sfn_definition = original
    assert definition == {"StartAt": "Done", "TimeoutSeconds": 30, "States": {"Done": {"Type": "Succeed"}}}
