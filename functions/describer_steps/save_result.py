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
from describer_rules.contracts import ModelIds, ProductRecord, Status
from describer_steps.states import (
    SaveInput,
    SaveOutput,
)


def elapsed_ms_since(iso_start: str) -> int:
    started = datetime.fromisoformat(iso_start.replace("Z", "+00:00"))
    return max(0, int((datetime.now(UTC) - started).total_seconds() * 1000))


def completed_record(request: SaveInput) -> ProductRecord:
    return request.product.record(
        Status.COMPLETED,
        request.execution_name,
        attributes=request.merged.attributes,
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
    )


def save_result(request: SaveInput, table: ResultsTable, events: ProductEvents) -> SaveOutput:
    """Write and announce the COMPLETED record. ``saved`` also when an earlier attempt wrote it; an
    event PutEvents did not take waits in the outbox (PublishEvents sends it), the run still succeeds."""
    final = table.write_final(completed_record(request))
    saved = final.record is not None and final.record.status == Status.COMPLETED
    published = saved and publish_committed(request.product.product_id, table, events)
    return SaveOutput(
        product_id=request.product.product_id,
        saved=saved,
        written=final.written,
        events_pending=saved and not published,
    )
