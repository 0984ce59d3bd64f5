"""Everything this project knows about its local AWS emulator, ministack (pinned in pyproject.toml).

ministack serves S3, EventBridge, Step Functions, Lambda, DynamoDB, IAM and CloudFormation on one
port. It runs Lambdas as warm subprocesses of its own interpreter (this virtualenv, which holds the
handlers' dependencies, so no ``sam build``), and they inherit its process environment: the
endpoints of services it does not emulate (``AWS_ENDPOINT_URL_<SERVICE>``, pointing at the local
model host) are set here, never in the template. Its state lives in memory; temporary files (Lambda
code, S3 objects) go under the state directory, and stopping it drops everything. It starts through
``emulator.patch``, so that a failed handler reaches Step Functions under its exception's class name
(as on AWS) and the state machine's Retry and Catch rules run locally as they do there.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from describer.local.processes import BackgroundService

REGION = "us-east-1"
# ministack accepts any credentials; these keep every client off the user's real AWS profile.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION}
_HEALTH_PATH = "/_ministack/health"
# The chaos faults' file (``patch.EmulatorFaults`` as JSON), and beside it what was injected so far.
FAULTS_ENV = "DESCRIBER_EMULATOR_FAULTS"
REPORT_NAME = "faults-report.json"
# Variables of the caller's shell that would send the emulator's clients somewhere else.
_SCRUBBED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_REGION")


def endpoint_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def client_environment(port: int, base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Environment for a process whose AWS clients (boto3, the SAM CLI) must talk to the emulator."""
    env = {k: v for k, v in base.items() if k not in _SCRUBBED and not k.startswith("AWS_ENDPOINT_URL")}
    return {**env, **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint_url(port)}


# The services the deployment goes through and the stack's resources live in, as named in the emulator's
# health report: start-up waits for every one of them.
REQUIRED_SERVICES = (
    "cloudformation",
    "iam",
    "s3",
    "events",
    "sqs",
    "lambda",
    "states",
    "dynamodb",
    "logs",
    "monitoring",
)


# ministack run through the error-type patch (see patch.py); the marker names that module.
_LAUNCHER = "describer.local.emulator.patch"


def service(state_dir: Path) -> BackgroundService:
    return BackgroundService("emulator", state_dir, marker=_LAUNCHER)


def start(state_dir: Path, port: int, service_endpoints: Mapping[str, str]) -> int:
    """Start ministack on ``port``; ``service_endpoints`` go into its (and its Lambdas') environment.

    ``service_endpoints`` maps ``AWS_ENDPOINT_URL_<SERVICE>`` variable names to URLs.
    """
    temp_dir = state_dir / "emulator-tmp"
    temp_dir.mkdir(parents=True, exist_ok=True)
    base = {
        k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith("AWS_ENDPOINT_URL")
    }
    env = {
        **base,
        **CREDENTIALS,
        **service_endpoints,
        "GATEWAY_PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "MINISTACK_REGION": REGION,
        "LOG_LEVEL": "WARNING",
        # Lambda code, S3 objects and ministack's pid file: all under the state directory.
        "TMPDIR": str(temp_dir),
        "S3_DATA_DIR": str(temp_dir / "s3"),
        "STATE_DIR": str(temp_dir / "state"),
        "PERSIST_STATE": "0",
        "LAMBDA_EXECUTOR": "local",
        # Lambda workers write .pyc files next to the shared code otherwise.
        "PYTHONDONTWRITEBYTECODE": "1",
        # The chaos faults the emulator injects itself (none while the file is absent): set_faults.
        FAULTS_ENV: str(faults_file(state_dir)),
    }
    return service(state_dir).start([sys.executable, "-m", _LAUNCHER], env, cwd=state_dir)


def faults_file(state_dir: Path) -> Path:
    """Where the emulator reads its chaos faults (``patch.EmulatorFaults`` as JSON)."""
    return state_dir / "emulator-tmp" / "faults.json"


def set_faults(state_dir: Path, faults_json: str | None) -> None:
    """Give the running emulator these faults (``patch.EmulatorFaults`` as JSON); None: none."""
    path = faults_file(state_dir)
    if faults_json is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(faults_json)
    temporary.replace(path)  # the emulator never reads half a file


def injected_faults(state_dir: Path) -> dict[str, int]:
    """What the emulator injected since its faults' report was last cleared (``clear_faults_report``)."""
    report = faults_file(state_dir).with_name(REPORT_NAME)
    return dict(json.loads(report.read_text())) if report.is_file() else {}


def clear_faults_report(state_dir: Path) -> None:
    faults_file(state_dir).with_name(REPORT_NAME).unlink(missing_ok=True)


def is_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(endpoint_url(port) + _HEALTH_PATH, timeout=2) as response:
            services = json.loads(response.read()).get("services", {})
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return all(services.get(name) in {"available", "running"} for name in REQUIRED_SERVICES)


def wait_until_healthy(state_dir: Path, port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_healthy(port):
            return
        if service(state_dir).pid() is None:
            raise RuntimeError(f"the emulator exited during start-up:\n{service(state_dir).log_tail()}")
        time.sleep(0.2)
    raise TimeoutError(f"the emulator did not answer on port {port} within {timeout_s:.0f} s")
