"""ministack, started with the one fix the local stack needs: a failed handler's error type.

AWS Lambda reports an unhandled Python exception with ``errorType`` set to the exception's class
name, and Step Functions matches a Lambda task's Retry and Catch rules on it (``EndpointThrottled``,
``TransientError`` ...). ministack 1.5.33 loses the name twice: its Python warm worker writes only
``str(e)`` and a traceback (the ``except`` around the handler call in
``ministack/core/lambda_runtime.py``), and ``_execute_function_warm`` in
``ministack/services/lambda_svc.py`` reports every such failure as ``Runtime.HandlerError``. So no
typed Retry would ever run locally.

This module patches both in memory, then runs ministack's own ``main``: the worker also writes
``errorType`` (the class name, as AWS's Python runtime does), and the warm executor reports it in
place of ``Runtime.HandlerError``. Nothing on disk changes. It refuses to start any ministack version
but :data:`PINNED_VERSION`: on an upgrade, check whether the new release reports ``errorType`` itself
(then delete this module and start ``python -m ministack`` again), else re-check that the two
patched places still read as :data:`WORKER_ERROR_LINE` and ``_execute_function_warm`` expect, and
move the pin here and in ``pyproject.toml`` together.

Run: ``python -m describer.local.emulator_patch`` (the emulator's own environment variables apply).
"""

from __future__ import annotations

import importlib.metadata
import sys
import threading
from typing import Any

PINNED_VERSION = "1.5.33"
# The worker script's reply for a failed invocation, as the text of that script holds it.
WORKER_ERROR_LINE = 'json.dumps({"status": "error", "error": str(e), "trace": traceback.format_exc()})'
WORKER_TYPED_ERROR_LINE = (
    'json.dumps({"status": "error", "error": str(e), "errorType": type(e).__name__,'
    ' "trace": traceback.format_exc()})'
)
# What ministack reports for any handler exception; replaced by the exception's class name.
GENERIC_ERROR_TYPE = "Runtime.HandlerError"


class UnsupportedEmulatorVersion(RuntimeError):
    pass


def check_version(installed: str | None = None) -> None:
    version = installed or importlib.metadata.version("ministack")
    if version != PINNED_VERSION:
        raise UnsupportedEmulatorVersion(
            f"ministack {version} is installed; the local stack's error-type patch "
            f"(describer/local/emulator_patch.py) is written for {PINNED_VERSION} only. "
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
