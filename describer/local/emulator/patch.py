"""ministack, started with the fixes the local stack needs: error types, timeouts, map limits, YAML.

AWS Lambda reports an unhandled Python exception with ``errorType`` set to the exception's class
name, and Step Functions matches a Lambda task's Retry and Catch rules on it (``EndpointThrottled``,
``TransientError`` ...). ministack 1.5.33 loses the name twice: its Python warm worker writes only
``str(e)`` and a traceback (the ``except`` around the handler call in
``ministack/core/lambda_runtime.py``), and ``_execute_function_warm`` in
``ministack/services/lambda_svc.py`` reports every such failure as ``Runtime.HandlerError``. So no
typed Retry would ever run locally.

This module patches both in memory, then runs ministack's own ``main``: the worker also writes
``errorType`` (the class name, as AWS's Python runtime does), and the warm executor reports it in
place of ``Runtime.HandlerError``. Nothing on disk changes.

Two Step Functions gaps are patched the same way (``ministack/services/stepfunctions.py``):

- A definition's top-level ``TimeoutSeconds`` is never enforced (ministack never sets TIMED_OUT).
  :func:`enforce_execution_timeout` wraps ``_run_execution``: when the time is up and the run is
  still RUNNING, it ends TIMED_OUT (error ``States.Timeout``, an ``ExecutionTimedOut`` history event)
  and publishes the "Step Functions Execution Status Change" event, as AWS does; the run's thread
  stops at its next state, and a late failure of the state it was in no longer overwrites the
  status (``_fail_execution`` leaves an ended run alone).
- A Distributed Map reads ``MaxConcurrency`` and ``ToleratedFailurePercentage`` (``...Count``) as
  literals only. :func:`resolve_map_limits` resolves their ``...Path`` spellings against the Map's
  input first, as AWS does, so the backfill definition stays JSON with its limits in the input.

And one CloudFormation gap (``ministack/services/cloudformation/provisioners.py``): AWS accepts an
``AWS::StepFunctions::StateMachine`` definition in YAML (``DefinitionS3Location``, which ``sam
deploy`` makes of ``DefinitionUri``) and hands Step Functions its JSON; ministack passes the text on
as it is, and its Step Functions parses only JSON. :func:`json_definition` converts it after the
substitutions, so DescribeProduct's ASL can be YAML with a numeric ``${RunTimeoutSeconds}``.

And two faults for ``make chaos``, off unless the JSON file that ``FAULTS_ENV`` names says otherwise
(``EmulatorFaults``, read again whenever it changes): an EventBridge outage (PutEvents of product
events answers ``InternalException``, HTTP 500, as EventBridge does when it is in trouble) and Lambda
timeouts after the write (a share of a function's successful invocations is reported as AWS reports
a timed-out one, ``Sandbox.Timedout``, after the handler did its work: its write landed, its caller
sees a failure).

It refuses to start any ministack version but :data:`PINNED_VERSION`: on an upgrade, check whether
the new release does these itself (then drop that part, or this module and start ``python -m
ministack`` again), else re-check that the patched places still read as :data:`WORKER_ERROR_LINE`,
``_execute_function_warm``, ``_run_execution``, ``_fail_execution``, ``_run_distributed_map`` and
``_sfn_definition`` expect, and move the pin here and in ``pyproject.toml`` together.

Run: ``python -m describer.local.emulator.patch`` (the emulator's own environment variables apply).
"""

from __future__ import annotations

import contextvars
import importlib.metadata
import json
import os
import random
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from describer.local.emulator import FAULTS_ENV, REPORT_NAME
from describer_rules.contracts import EVENT_SOURCE

PINNED_VERSION = "1.5.33"
OUTAGE_KIND = "eventbridge-outage"
# What AWS Lambda reports for an invocation that ran out of time.
TIMED_OUT_ERROR = "Sandbox.Timedout"
# The worker script's reply for a failed invocation, as the text of that script holds it.
WORKER_ERROR_LINE = 'json.dumps({"status": "error", "error": str(e), "trace": traceback.format_exc()})'
WORKER_TYPED_ERROR_LINE = (
    'json.dumps({"status": "error", "error": str(e), "errorType": type(e).__name__,'
    ' "trace": traceback.format_exc()})'
)
# What ministack reports for any handler exception; replaced by the exception's class name.
GENERIC_ERROR_TYPE = "Runtime.HandlerError"
# A Distributed Map's limits that AWS also reads from the input through a ``...Path`` field.
MAP_LIMIT_FIELDS = ("MaxConcurrency", "ToleratedFailurePercentage", "ToleratedFailureCount")
TIMEOUT_ERROR = "States.Timeout"


class UnsupportedEmulatorVersion(RuntimeError):
    pass


def check_version(installed: str | None = None) -> None:
    version = installed or importlib.metadata.version("ministack")
    if version != PINNED_VERSION:
        raise UnsupportedEmulatorVersion(
            f"ministack {version} is installed; the local stack's error-type patch "
            f"(describer/local/emulator/patch.py) is written for {PINNED_VERSION} only. "
            "Install the pinned version (make install) or re-check the patch for this one."
        )


def typed_worker_script(script: str) -> str:
    """The Python worker script with the failed-invocation reply carrying ``errorType``."""
    if script.count(WORKER_ERROR_LINE) != 1:
        raise UnsupportedEmulatorVersion(
            "ministack's Python worker script no longer holds the failed-invocation reply this patch "
            f"replaces ({WORKER_ERROR_LINE!r})"
        )
    return script.replace(WORKER_ERROR_LINE, WORKER_TYPED_ERROR_LINE)


def apply() -> None:
    """Patch the installed (pinned) ministack in this process, before its server starts."""
    check_version()
    from ministack.core import lambda_runtime
    from ministack.services import lambda_svc

    lambda_runtime._PYTHON_WORKER_SCRIPT = typed_worker_script(lambda_runtime._PYTHON_WORKER_SCRIPT)
    # The worker's reply reaches _execute_function_warm only as its "error" text; the type rides a
    # thread-local from the worker's invoke (same thread) to the executor's result.
    last_error_type = threading.local()
    invoke = lambda_runtime.Worker.invoke
    execute_warm = lambda_svc._execute_function_warm

    def typed_invoke(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = invoke(self, *args, **kwargs)
        last_error_type.value = response.get("errorType") if response.get("status") == "error" else None
        return response

    def typed_execute_warm(func: dict[str, Any], event: Any, request_id: str) -> dict[str, Any]:
        last_error_type.value = None
        result: dict[str, Any] = execute_warm(func, event, request_id)
        body = result.get("body")
        error_type = last_error_type.value
        if result.get("error") and isinstance(body, dict) and error_type:
            generic = body.get("errorType") == GENERIC_ERROR_TYPE
            body["errorType"] = error_type if generic else body["errorType"]
        return result

    lambda_runtime.Worker.invoke = typed_invoke
    lambda_svc._execute_function_warm = typed_execute_warm
    _patch_step_functions()
    _patch_cloudformation()
    faults_path = os.environ.get(FAULTS_ENV)
    _patch_faults(FaultFile(Path(faults_path) if faults_path else None))


class EmulatorFaults(BaseModel):
    """The faults the emulator injects on its own side (``make chaos``)."""

    eventbridge_outage: bool = False
    # A part of a function's name (its logical id, e.g. "SaveResultFunction") -> the share of its
    # successful invocations reported as timed out after they ran.
    timeout_after_write: dict[str, float] = Field(default_factory=dict)
    seed: int = 11


class FaultFile:
    """``EmulatorFaults`` from a file, read again when it changes; no file, no faults.

    What it injected is counted in ``REPORT_NAME`` beside it (fault kind -> count), for ``make chaos``.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: int | None = None
        self._faults = EmulatorFaults()
        self._lock = threading.Lock()
        self.draws = random.Random(self._faults.seed)
        self.injected: Counter[str] = Counter()

    def count(self, kind: str) -> None:
        """One more ``kind`` injected: the report file says so at once."""
        with self._lock:
            self.injected[kind] += 1
            if self.path is not None:
                report = self.path.with_name(REPORT_NAME)
                temporary = report.with_suffix(".tmp")
                temporary.write_text(json.dumps(dict(self.injected)))
                temporary.replace(report)

    def current(self) -> EmulatorFaults:
        stamp = self._mtime()
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                self._faults = EmulatorFaults.model_validate_json(self._text() or "{}")
                self.draws = random.Random(self._faults.seed)
            return self._faults

    def _mtime(self) -> int | None:
        try:
            return None if self.path is None else self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _text(self) -> str:
        try:
            return "" if self.path is None else self.path.read_text()
        except FileNotFoundError:  # removed since it was looked at: no faults
            return ""


def refuses_put_events(entries: list[dict[str, Any]], faults: EmulatorFaults) -> bool:
    """During an outage, PutEvents of product events fails (other sources, e.g. aws.states, pass)."""
    return faults.eventbridge_outage and any(entry.get("Source") == EVENT_SOURCE for entry in entries)


def timed_out_after_write(
    function_name: str, result: dict[str, Any], faults: EmulatorFaults, draw: Callable[[], float]
) -> dict[str, Any] | None:
    """The timed-out answer that replaces a successful invocation's, when the draw says so."""
    if result.get("error"):
        return None
    rate = next((r for part, r in faults.timeout_after_write.items() if part in function_name), 0.0)
    if rate <= 0 or draw() >= rate:
        return None
    message = f"Task timed out after its write (chaos: {function_name})"
    return {"body": {"errorMessage": message, "errorType": TIMED_OUT_ERROR}, "error": True, "log": message}


def _patch_faults(fault_file: FaultFile) -> None:
    from ministack.core.responses import error_response_json
    from ministack.services import eventbridge, lambda_svc

    put_events = eventbridge._put_events
    execute_warm = lambda_svc._execute_function_warm

    def put_events_or_outage(data: dict[str, Any], allow_aws_source: bool = False) -> Any:
        if refuses_put_events(data.get("Entries", []), fault_file.current()):
            fault_file.count(OUTAGE_KIND)
            return error_response_json("InternalException", "chaos: EventBridge is unavailable", 500)
        return put_events(data, allow_aws_source)

    def execute_then_time_out(func: dict[str, Any], event: Any, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = execute_warm(func, event, request_id)
        name = str((func.get("config") or {}).get("FunctionName", ""))
        faults = fault_file.current()
        with fault_file._lock:
            timed_out = timed_out_after_write(name, result, faults, fault_file.draws.random)
        if timed_out is None:
            return result
        fault_file.count("timeout-after-write " + next(p for p in faults.timeout_after_write if p in name))
        return timed_out

    eventbridge._put_events = put_events_or_outage
    lambda_svc._execute_function_warm = execute_then_time_out


def _patch_cloudformation() -> None:
    from ministack.services.cloudformation import provisioners

    sfn_definition = provisioners._sfn_definition
    provisioners._sfn_definition = lambda props: json_definition(sfn_definition(props))


def json_definition(text: str) -> str:
    """A state machine definition as Step Functions takes it: JSON, converted from YAML if need be."""
    try:
        json.loads(text)
    except ValueError:
        return json.dumps(yaml.safe_load(text))
    return text


def resolve_map_limits(
    state_def: dict[str, Any], effective: Any, resolve: Callable[[str, Any], Any]
) -> dict[str, Any]:
    """The Map state with each ``<limit>Path`` replaced by ``<limit>`` read from the Map's input."""
    state = dict(state_def)
    for field in MAP_LIMIT_FIELDS:
        path = state.pop(f"{field}Path", None)
        if path is not None:
            value = resolve(path, effective)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{field}Path {path!r} resolved to {value!r}, not a number")
            state[field] = value
    return state


def time_out(execution: dict[str, Any], timeout_s: float, now: Callable[[], str]) -> bool:
    """End a still RUNNING execution TIMED_OUT, as Step Functions does; False if it had ended."""
    if execution.get("status") != "RUNNING":
        return False
    cause = f"The execution ran longer than its TimeoutSeconds ({timeout_s:g} s)"
    execution.update(status="TIMED_OUT", stopDate=now(), error=TIMEOUT_ERROR, cause=cause)
    execution["output"] = json.dumps({"Error": TIMEOUT_ERROR, "Cause": cause})
    return True


def enforce_execution_timeout(
    run_execution: Callable[[str], None],
    executions: Any,
    state_machines: Any,
    on_timeout: Callable[[dict[str, Any], float], None],
) -> Callable[[str], None]:
    """``_run_execution`` with a timer that times the run out after its definition's TimeoutSeconds."""

    def run(exec_arn: str) -> None:
        execution = executions.get(exec_arn)
        machine = state_machines.get(execution["stateMachineArn"]) if execution else None
        try:
            timeout_s = json.loads(machine["definition"]).get("TimeoutSeconds") if machine else None
        except ValueError:
            timeout_s = None  # ministack fails the run for its definition itself
        timer = None
        if execution is not None and isinstance(timeout_s, int) and timeout_s > 0:
            # The timer's thread publishes the status event: it needs the request's account and region.
            context = contextvars.copy_context()
            timer = threading.Timer(timeout_s, context.run, args=(on_timeout, execution, timeout_s))
            timer.daemon = True
            timer.start()
        try:
            run_execution(exec_arn)
        finally:
            if timer is not None:
                timer.cancel()

    return run


def _patch_step_functions() -> None:
    from ministack.services import stepfunctions as sfn

    fail_execution = sfn._fail_execution
    run_distributed_map = sfn._run_distributed_map

    def on_timeout(execution: dict[str, Any], timeout_s: float) -> None:
        if time_out(execution, timeout_s, sfn.now_iso):
            details = {"error": execution["error"], "cause": execution["cause"]}
            sfn._add_event(execution, "ExecutionTimedOut", {"executionTimedOutEventDetails": details})
            sfn._emit_execution_status_event(execution)

    def fail_running_execution(execution: dict[str, Any], error: str, cause: str) -> None:
        if execution.get("status") == "RUNNING":
            fail_execution(execution, error, cause)

    def run_distributed_map_with_paths(
        state_def: dict[str, Any], raw_input: Any, effective: Any, *args: Any
    ) -> Any:
        resolved = resolve_map_limits(
            state_def, effective, lambda path, data: sfn._resolve_path_or_ctx(path, data, args[-1])
        )
        return run_distributed_map(resolved, raw_input, effective, *args)

    sfn._run_execution = enforce_execution_timeout(
        sfn._run_execution, sfn._executions, sfn._state_machines, on_timeout
    )
    sfn._fail_execution = fail_running_execution
    sfn._run_distributed_map = run_distributed_map_with_paths


def main() -> None:
    try:
        apply()
    except UnsupportedEmulatorVersion as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    from ministack.app import main as ministack_main

    ministack_main()


if __name__ == "__main__":
    main()
