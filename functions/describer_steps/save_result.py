"""SaveResult: the COMPLETED record, written conditionally and announced.

The write is conditional (``ResultsTable.write_final``), so a run that a newer upload overtook
leaves the newer record alone, and a repeated SaveResult (a retry after a timeout, a PutEvents
failure) finds the run's own COMPLETED record and counts as saved without changing it: a review made
in between stays. Its Product Described event is committed with the write (the outbox) and
published by ``flush_outbox``. RecordFailure (``record_failure``) is the other way a run ends.
"""

from __future__ import annotations

from datetime import UTC, datetime

from describer_aws.product_events import ProductEvents, publish_committed
from describer_aws.results_table import ResultsTable
from describer_rules.contracts import CostLedger, ModelIds, ProductRecord, Status
from describer_rules.cost_ledger import described_ledger
from describer_steps.states import (
    SaveInput,
    SaveOutput,
)


def elapsed_ms_since(iso_start: str) -> int:
    started = datetime.fromisoformat(iso_start.replace("Z", "+00:00"))
    return max(0, int((datetime.now(UTC) - started).total_seconds() * 1000))


def run_ledger(request: SaveInput) -> CostLedger:
    """What the run used (``describer_rules.cost_ledger``): on-demand copy, the usual path."""
    return described_ledger(
        prepare_ms=request.prepare_ms,
        endpoint_ms=request.merged.endpoint_ms,
        endpoint_calls=request.merged.endpoint_calls,
        description_ms=request.description.description_ms,
        token_usage=request.description.token_usage,
    )


def completed_record(request: SaveInput, ledger: CostLedger | None = None) -> ProductRecord:
    """The COMPLETED record; ``ledger`` where the copy was not bought the usual way (batch)."""
    return request.product.record(
        Status.COMPLETED,
        request.execution_name,
        attributes=request.merged.attributes,
        unverified_attributes=request.merged.unverified_attributes,
        unknown_attributes=request.merged.unknown_attributes,
        confidence=request.merged.confidence,
        alternatives=request.merged.alternatives,
        photos_agreed=request.merged.photos_agreed,
        needs_review=request.merged.needs_review or request.product.category_review,
        description=request.description.text,
        content=request.description.content,
        token_usage=request.description.token_usage,
        model_ids=ModelIds(attributes=request.merged.endpoint, description=request.description.model_id),
        timings_ms={
            "prepare": request.prepare_ms,
            "attributes": request.merged.endpoint_ms,
            "attributes_wall": request.merged.endpoint_wall_ms,
            "description": request.description.description_ms,
            "total": elapsed_ms_since(request.execution_start),
        },
        cost=ledger or run_ledger(request),
    )


def save_result(
    request: SaveInput, table: ResultsTable, events: ProductEvents, ledger: CostLedger | None = None
) -> SaveOutput:
    """Write and announce the COMPLETED record. ``saved`` also when an earlier attempt wrote it; an
    event PutEvents did not take waits in the outbox (PublishEvents sends it), the run still succeeds."""
    final = table.write_final(completed_record(request, ledger))
    saved = final.record is not None and final.record.status == Status.COMPLETED
    published = saved and publish_committed(request.product.product_id, table, events)
    return SaveOutput(
        product_id=request.product.product_id,
        saved=saved,
        written=final.written,
        events_pending=saved and not published,
    )
