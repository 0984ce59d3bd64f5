"""The local stack's life cycle: emulator + model host + the real template deployed with the SAM CLI.

``up`` is idempotent: running services are kept, and the template is redeployed only when the
application's files or the deploy parameters changed since the last deploy. Everything it writes
(pid files, logs, emulator temp files, ``stack.json``) stays under one state directory, ``.local/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from describer.local import emulator
from describer.local.model_host.batch_jobs import BatchFaults
from describer.local.model_host.faults import FaultSpec
from describer.local.offline_writer.description import OFFLINE_MODEL_ID
from describer.local.processes import BackgroundService

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATE_FILE = "stack.json"
# The application's files: a change to any of them means the deployed stack is out of date.
_APP_GLOBS = ("template.yaml", "statemachine/**/*", "functions/**/*.py", "functions/**/*.json")
_READY_STATUSES = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
LOCAL_MAP_CONCURRENCY = 1
# Products a local backfill describes at once: each is a few more warm Lambda workers on the emulator.
LOCAL_BACKFILL_CONCURRENCY = 4
# The locales the local stack writes copy in: a newcomer sees the default locale and a translation.
LOCAL_LOCALES = ("en-US", "es-ES")
# The pipeline's endpoint read timeout on the local stack (AWS: the template's 65 s default), so that
# an injected slow reply (this plus a few seconds) costs a run seconds rather than minutes.
LOCAL_ENDPOINT_READ_TIMEOUT_S = 20
# Photos of a product folder settle for this long before the product is described (AWS default: 10 s):
# the local uploads of one folder take well under a second.
LOCAL_PHOTO_SETTLE_S = 3
SLOW_REPLY_S = LOCAL_ENDPOINT_READ_TIMEOUT_S + 5


def default_state_dir() -> Path:
    """The state directory the commands use unless told otherwise: ``$DESCRIBER_LOCAL_DIR`` or ``.local/``."""
    return Path(os.environ.get("DESCRIBER_LOCAL_DIR", PROJECT_ROOT / ".local"))


class LocalSettings(BaseModel):
    """Where the local stack lives and how it is named; ``stack.json`` records what ``up`` used."""

    state_dir: Path = PROJECT_ROOT / ".local"
    emulator_port: int = 4566
    model_host_port: int = 4590
    stack_name: str = "product-describer-local"
    endpoint_name: str = "product-describer-local"
    model_dir: Path = PROJECT_ROOT / ".cache" / "demo-model"
    project_dir: Path = PROJECT_ROOT
    deployed_fingerprint: str | None = None
    served_model_fingerprint: str | None = None
    faults: FaultSpec = Field(default_factory=FaultSpec)

    @property
    def endpoint_url(self) -> str:
        return emulator.endpoint_url(self.emulator_port)

    @property
    def model_host_url(self) -> str:
        return f"http://127.0.0.1:{self.model_host_port}"

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / STATE_FILE).write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, state_dir: Path) -> LocalSettings | None:
        try:
            return cls.model_validate_json((state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None


def model_host_service(state_dir: Path) -> BackgroundService:
    return BackgroundService("model-host", state_dir, marker="describer.local.model_host")


def description_model_id() -> str:
    """The Bedrock model id the local stack is deployed with: names who really writes the text."""
    model = os.environ.get("DESCRIBER_OPENAI_MODEL")
    return (
        f"openai-compatible/{model}"
        if os.environ.get("DESCRIBER_OPENAI_BASE_URL") and model
        else OFFLINE_MODEL_ID
    )


def deploy_parameters(settings: LocalSettings) -> dict[str, str]:
    """Template parameters for the local deployment: the local endpoint and description model."""
    return {
        "EndpointName": settings.endpoint_name,
        "BedrockModelId": description_model_id(),
        # Each concurrent Lambda call is one more cold worker process on the emulator: on a laptop's
        # few cores, asking a product's questions one at a time finishes a batch of uploads sooner.
        "MapConcurrency": str(LOCAL_MAP_CONCURRENCY),
        "BackfillMaxConcurrency": str(LOCAL_BACKFILL_CONCURRENCY),
        "Locales": ",".join(LOCAL_LOCALES),
        "EndpointReadTimeoutSeconds": str(LOCAL_ENDPOINT_READ_TIMEOUT_S),
        "PhotoSettleSeconds": str(LOCAL_PHOTO_SETTLE_S),
        # The model host's batch jobs move one state per look: look often.
        "BatchCopyPollSeconds": "5",
    }


def fingerprint(settings: LocalSettings) -> str:
    digest = hashlib.sha256()
    for pattern in _APP_GLOBS:
        for path in sorted(settings.project_dir.glob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(
                    str(path.relative_to(settings.project_dir)).encode() + b"\0" + path.read_bytes()
                )
    digest.update(repr(sorted(deploy_parameters(settings).items())).encode())
    return digest.hexdigest()


def model_fingerprint(model_dir: Path) -> str:
    """Changes when the model dir's content does (a retrained model, edited inference code).

    By content, not modification time: ``make demo-model`` rewrites ``code/`` on every run.
    """
    digest = hashlib.sha256(str(model_dir).encode())
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(model_dir)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def aws_client(settings: LocalSettings, service: str) -> Any:
    # The stubs type clients per literal service name; this helper serves any service.
    session: Any = boto3.Session()
    return session.client(
        service,
        endpoint_url=settings.endpoint_url,
        region_name=emulator.REGION,
        aws_access_key_id=emulator.CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=emulator.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def stack_description(settings: LocalSettings) -> dict[str, Any] | None:
    try:
        stacks = aws_client(settings, "cloudformation").describe_stacks(StackName=settings.stack_name)[
            "Stacks"
        ]
    except ClientError:
        return None
    return stacks[0] if stacks else None


def _start_model_host(settings: LocalSettings) -> None:
    service = model_host_service(settings.state_dir)
    if service.pid() is not None:
        return
    if not (settings.model_dir / "code" / "inference.py").is_file():
        raise FileNotFoundError(f"no demo model in {settings.model_dir}: run `make demo-model` first")
    argv = [
        sys.executable,
        "-m",
        "describer.local.model_host",
        "--model-dir",
        str(settings.model_dir),
        "--endpoint-name",
        settings.endpoint_name,
        "--port",
        str(settings.model_host_port),
    ]
    service.start(argv, emulator.client_environment(settings.emulator_port), cwd=settings.project_dir)


def _model_host_ready(settings: LocalSettings) -> bool:
    try:
        with urllib.request.urlopen(settings.model_host_url + "/ping", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_for_model_host(settings: LocalSettings, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    service = model_host_service(settings.state_dir)
    while time.monotonic() < deadline:
        if _model_host_ready(settings):
            return
        if service.pid() is None:
            raise RuntimeError(f"the model host exited during start-up:\n{service.log_tail()}")
        time.sleep(0.2)
    raise TimeoutError(
        f"the model host did not answer on port {settings.model_host_port} in {timeout_s:.0f} s"
    )


def _start_and_wait_for_model_host(settings: LocalSettings) -> None:
    _start_model_host(settings)
    _wait_for_model_host(settings)
    set_faults(settings, settings.faults)


def set_faults(settings: LocalSettings, spec: FaultSpec) -> dict[str, Any]:
    """Make the running model host inject ``spec`` (an empty spec: serve cleanly); its report."""
    request = urllib.request.Request(
        settings.model_host_url + "/_local/faults", data=spec.model_dump_json().encode(), method="PUT"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.loads(response.read()))


def set_batch_faults(settings: LocalSettings, faults: BatchFaults) -> dict[str, Any]:
    """Make the running model host end its batch jobs as ``faults`` says; its report."""
    request = urllib.request.Request(
        settings.model_host_url + "/_local/batch-faults", data=faults.model_dump_json().encode(), method="PUT"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.loads(response.read()))


def batch_job_report(settings: LocalSettings) -> dict[str, Any]:
    """The model host's batch jobs: how they are made to end, how many there were and how each ended."""
    with urllib.request.urlopen(settings.model_host_url + "/_local/batch-faults", timeout=5) as response:
        return dict(json.loads(response.read()))


def injected_faults(settings: LocalSettings) -> dict[str, Any]:
    """The model host's fault report: what it injects and how often it did so far."""
    with urllib.request.urlopen(settings.model_host_url + "/_local/faults", timeout=5) as response:
        return dict(json.loads(response.read()))


def _start_emulator(settings: LocalSettings) -> None:
    if emulator.service(settings.state_dir).pid() is not None:
        return
    host = settings.model_host_url
    # Bedrock's control plane too: the host emulates batch inference jobs (model_host.batch_jobs).
    endpoints = {
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": host,
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": host,
        "AWS_ENDPOINT_URL_BEDROCK": host,
    }
    emulator.start(settings.state_dir, settings.emulator_port, endpoints)


def sam_executable(settings: LocalSettings) -> Path:
    return Path(os.environ.get("DESCRIBER_SAM", settings.project_dir / ".venv-sam" / "bin" / "sam"))


def deploy(settings: LocalSettings) -> None:
    """``sam deploy`` of the real template onto the emulator (no build: the Lambdas run in this venv)."""
    overrides = [f"{name}={value}" for name, value in deploy_parameters(settings).items()]
    command = [
        str(sam_executable(settings)),
        "deploy",
        "--template-file",
        str(settings.project_dir / "template.yaml"),
        "--stack-name",
        settings.stack_name,
        "--resolve-s3",
        "--capabilities",
        "CAPABILITY_IAM",
        "--no-confirm-changeset",
        "--no-fail-on-empty-changeset",
        "--region",
        emulator.REGION,
        "--parameter-overrides",
        *overrides,
    ]
    env = {**emulator.client_environment(settings.emulator_port), "SAM_CLI_TELEMETRY": "0"}
    log_file = settings.state_dir / "logs" / "deploy.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        result = subprocess.run(
            command, env=env, cwd=settings.project_dir, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"sam deploy failed (exit {result.returncode}), see {log_file}:\n{tail}")
    stack = stack_description(settings)
    if stack is None or stack["StackStatus"] not in _READY_STATUSES:
        status = stack["StackStatus"] if stack else "missing"
        raise RuntimeError(f"stack {settings.stack_name} is {status} after sam deploy, see {log_file}")


def running(settings: LocalSettings) -> bool:
    return (
        emulator.service(settings.state_dir).pid() is not None
        and model_host_service(settings.state_dir).pid() is not None
        and emulator.is_healthy(settings.emulator_port)
    )


def up(requested: LocalSettings) -> tuple[LocalSettings, bool]:
    """Bring the local stack up; returns the settings in use and whether it (re)deployed."""
    saved = LocalSettings.load(requested.state_dir)
    if saved is not None and emulator.service(saved.state_dir).pid() is not None:
        # Already running: keep its ports, take everything else from the request.
        requested = requested.model_copy(
            update={"emulator_port": saved.emulator_port, "model_host_port": saved.model_host_port}
        )
    served_model = model_fingerprint(requested.model_dir)
    settings = requested.model_copy(
        update={
            "deployed_fingerprint": saved.deployed_fingerprint if saved else None,
            "served_model_fingerprint": served_model,
        }
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if saved is not None and saved.served_model_fingerprint != served_model:
        model_host_service(settings.state_dir).stop()  # it serves another model: restarted below
    # The model host loads torch and the model while the emulator starts.
    with ThreadPoolExecutor(max_workers=2) as pool:
        host = pool.submit(_start_and_wait_for_model_host, settings)
        _start_emulator(settings)
        emulator.wait_until_healthy(settings.state_dir, settings.emulator_port)
        host.result()
    wanted = fingerprint(settings)
    stack = stack_description(settings)
    deployed = False
    if (
        stack is None
        or stack["StackStatus"] not in _READY_STATUSES
        or settings.deployed_fingerprint != wanted
    ):
        deploy(settings)
        deployed = True
    settings = settings.model_copy(update={"deployed_fingerprint": wanted})
    settings.save()
    return settings, deployed


def down(state_dir: Path) -> list[int]:
    """Stop the model host and the emulator (with its Lambda workers); returns the pids stopped."""
    stopped = model_host_service(state_dir).stop() + emulator.service(state_dir).stop()
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return stopped
