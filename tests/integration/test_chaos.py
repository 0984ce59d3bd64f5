"""`make chaos`, short: faults, a re-upload, duplicate deliveries, an EventBridge outage and Lambda
timeouts after the write on the local stack lose nothing."""

from __future__ import annotations

import pytest
from rich.console import Console

from benchmarks.chaos import CHAOS_SEED, run_chaos
from describer.local.model_host.faults import FaultSpec
from describer.local.stack import LocalSettings, set_faults

pytestmark = pytest.mark.integration

# Higher rates than `make chaos` so that a few uploads meet every kind of fault; no slow replies,
# which only cost time (each one a read timeout) and map to the same retry as an unavailable endpoint.
FAULTS = "endpoint-throttle=0.3,endpoint-unavailable=0.1,bedrock-throttle=0.3,bedrock-unavailable=0.1"


def test_faults_reuploads_and_duplicate_deliveries_lose_nothing(local_settings: LocalSettings) -> None:
    set_faults(local_settings, FaultSpec.parse(FAULTS, seed=CHAOS_SEED))
    try:
        result = run_chaos(
            local_settings,
            products=3,
            reuploads=1,
            redeliveries=2,
            timeout_s=400,
            console=Console(quiet=True),
            photo_products=1,  # a product folder, which gets one more photo: two photo sets
            # Higher than `make chaos` too, so that a few uploads meet a timeout after the write.
            timeouts_after_write={"SaveResultFunction": 0.5, "RecordFailureFunction": 0.2},
        )
    finally:
        set_faults(local_settings, FaultSpec())

    assert result.clean, result.summary()
    assert result.summary() == (
        "chaos: 6 uploads, 6 completed, 0 failed, 0 stuck, 0 duplicate executions, 0 wrong versions; "
        "events: 0 lost, 0 duplicates, 0 wrong versions, 0 still pending; "
        "every final record has exactly one final event"
    )
    # The faults did happen, and each redelivered event was sent twice (during the run and late).
    assert sum(result.faults["injected"].values()) > 0
    # EventBridge refused product events while it was out, and some step timed out after its write.
    assert result.emulator_faults.get("eventbridge-outage", 0) > 0, result.emulator_faults
    assert any(kind.startswith("timeout-after-write") for kind in result.emulator_faults), (
        result.emulator_faults
    )
    assert sorted(upload.redelivered for upload in result.uploads) == [0, 0, 2, 2]
    # The re-uploaded product's record holds the newer version's attributes, not a mix.
    reuploaded = result.uploads[-1]
    assert result.records[reuploaded.sample.product_id].source_version == reuploaded.ref.version
