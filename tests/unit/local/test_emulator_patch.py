"""The emulator patch (pinned ministack only): typed Lambda errors, run timeouts, map limit paths, YAML."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from ministack.core import lambda_runtime

from describer.local import emulator
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


PRODUCT_EVENT = {"Source": "product-describer", "DetailType": "Product Described", "Detail": "{}"}
STATUS_CHANGE = {
    "Source": "aws.states",
    "DetailType": "Step Functions Execution Status Change",
    "Detail": "{}",
}


def test_an_eventbridge_outage_refuses_product_events_only() -> None:
    outage = emulator_patch.EmulatorFaults(eventbridge_outage=True)
    assert emulator_patch.refuses_put_events([PRODUCT_EVENT], outage)
    assert not emulator_patch.refuses_put_events([STATUS_CHANGE], outage)
    assert not emulator_patch.refuses_put_events([PRODUCT_EVENT], emulator_patch.EmulatorFaults())


def test_a_timeout_after_the_write_replaces_a_successful_answer_of_the_named_function_only() -> None:
    faults = emulator_patch.EmulatorFaults(timeout_after_write={"SaveResultFunction": 0.5})
    ok = {"body": {"saved": True}, "log": ""}
    timed_out = emulator_patch.timed_out_after_write(
        "describer-SaveResultFunction-1A", ok, faults, lambda: 0.4
    )
    assert timed_out is not None and timed_out["error"] is True
    assert timed_out["body"]["errorType"] == "Sandbox.Timedout"
    assert (
        emulator_patch.timed_out_after_write("describer-SaveResultFunction-1A", ok, faults, lambda: 0.6)
        is None
    )
    assert (
        emulator_patch.timed_out_after_write("describer-PrepareFunction-1A", ok, faults, lambda: 0.0) is None
    )
    failed = {"body": {"errorType": "TransientError"}, "error": True}
    assert (
        emulator_patch.timed_out_after_write("describer-SaveResultFunction-1A", failed, faults, lambda: 0.0)
        is None
    )


def test_the_fault_file_is_read_again_when_it_changes(tmp_path: Any) -> None:
    path = tmp_path / "faults.json"
    faults = emulator_patch.FaultFile(path)
    assert faults.current() == emulator_patch.EmulatorFaults()
    path.write_text(emulator_patch.EmulatorFaults(eventbridge_outage=True).model_dump_json())
    assert faults.current().eventbridge_outage
    path.unlink()
    assert not faults.current().eventbridge_outage


def test_the_fault_hooks_apply_to_the_pinned_eventbridge_and_lambda_modules(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ministack.services import eventbridge, lambda_svc

    monkeypatch.setattr(eventbridge, "_put_events", lambda data, allow_aws_source=False: (200, {}, b"{}"))
    monkeypatch.setattr(lambda_svc, "_execute_function_warm", lambda func, event, request_id: {"body": 1})
    path = tmp_path / "faults.json"
    emulator_patch._patch_faults(emulator_patch.FaultFile(path))
    save_result = {"config": {"FunctionName": "describer-SaveResultFunction-1A"}}
    assert eventbridge._put_events({"Entries": [PRODUCT_EVENT]})[0] == 200
    assert lambda_svc._execute_function_warm(save_result, {}, "r") == {"body": 1}
    faults = emulator_patch.EmulatorFaults(eventbridge_outage=True, timeout_after_write={"SaveResult": 1.0})
    path.write_text(faults.model_dump_json())
    assert eventbridge._put_events({"Entries": [PRODUCT_EVENT]})[0] == 500
    assert eventbridge._put_events({"Entries": [STATUS_CHANGE]})[0] == 200
    assert lambda_svc._execute_function_warm(save_result, {}, "r")["body"]["errorType"] == "Sandbox.Timedout"
    report = json.loads((tmp_path / emulator.REPORT_NAME).read_text())
    assert report == {"eventbridge-outage": 1, "timeout-after-write SaveResult": 1}
