"""The local stack for the integration tests: emulator + model host on free ports, a temporary state dir."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from describer.deployment import Deployment, UploadRef, wait_for_final_records
from describer.local import stack
from describer.local.processes import live_group_members
from describer.local.samples import SampleFile, bad_files, synthetic_photos
from describer_aws.results_table import utc_now
from describer_rules.contracts import ProductRecord


def _free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    model_dir = Path(os.environ.get("DESCRIBER_DEMO_MODEL_DIR", stack.PROJECT_ROOT / ".cache" / "demo-model"))
    assert (model_dir / "code" / "inference.py").is_file(), (
        f"no demo model in {model_dir}: `make test` builds it first (make demo-model)"
    )
    return model_dir.resolve()


@pytest.fixture(scope="session")
def local_settings(
    tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path
) -> Iterator[stack.LocalSettings]:
    emulator_port, model_host_port = _free_ports(2)
    requested = stack.LocalSettings(
        state_dir=tmp_path_factory.mktemp("local-stack"),
        emulator_port=emulator_port,
        model_host_port=model_host_port,
        stack_name="product-describer-it",
        model_dir=demo_model_dir,
    )
    # A run stopped with SIGTERM (a CI timeout) still tears the stack down: no stray processes.
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    services = [stack.emulator.service(requested.state_dir), stack.model_host_service(requested.state_dir)]
    groups: list[int | None] = []
    try:
        settings, deployed = stack.up(requested)
        groups = [service.pid() for service in services]
        assert deployed
        assert None not in groups
        yield settings
    finally:
        stack.down(requested.state_dir)
        signal.signal(signal.SIGTERM, previous_handler)
    # Every process the stack started (Lambda workers included) is gone.
    assert all(group is not None and not live_group_members(group) for group in groups)
    assert not stack.running(settings)


@pytest.fixture(scope="session")
def deployment(local_settings: stack.LocalSettings) -> Deployment:
    return Deployment.local(local_settings.state_dir)


@pytest.fixture(scope="session")
def demo_uploads(
    tmp_path_factory: pytest.TempPathFactory, deployment: Deployment
) -> list[tuple[SampleFile, ProductRecord]]:
    """What `make demo` uploads (held-out synthetic photos of every category, a bad file per
    rejection), each with its final record. Tests read them; only test_final_records_survive changes
    one: it accepts a record that awaits review (which stays publishable)."""
    out = tmp_path_factory.mktemp("demo-uploads")
    samples = synthetic_photos(out / "photos", per_category=3) + bad_files(out / "bad")
    uploads = {}
    for sample in samples:
        uploaded_at = utc_now()
        uploads[sample.product_id] = UploadRef.from_response(
            deployment.upload(sample.path, sample.key), uploaded_at
        )
    records = wait_for_final_records(deployment, uploads, timeout_s=420)
    return [(sample, records[sample.product_id]) for sample in samples]
