"""PublishEvents: the outbox's sweeper, every minute (template.yaml), for events still pending.

A final write commits its event in the record's outbox, and the step that wrote it
publishes it at once (``publish_committed``). What that could not publish (an EventBridge outage, a
Lambda that timed out after its write) waits in the sparse
``by-outbox`` index; this publishes it, oldest first, and takes it out. A record written in the last
``GRACE_S`` seconds is left to its writer; the outbox's lease keeps the two from publishing the same
entries either way (``flush_outbox``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError
from pydantic import BaseModel

from describer_aws.product_events import ProductEvents, flush_outbox
from describer_aws.results_table import ResultsTable
from describer_rules.errors import TransientError

# The writer's own publish happens within its Lambda's timeout (30 s, template.yaml).
GRACE_S = 60


class SweepReport(BaseModel):
    records: int = 0
    published: int = 0
    failed: list[str] = []


def publish_pending(table: ResultsTable, events: ProductEvents, now: datetime | None = None) -> SweepReport:
    """Publish every pending event older than ``GRACE_S``; a record that fails stays pending."""
    before = (now or datetime.now(UTC)) - timedelta(seconds=GRACE_S)
    report = SweepReport()
    for product_id in table.with_pending_events(
        before.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    ):
        report.records += 1
        try:
            report.published += flush_outbox(product_id, table, events)
        except (TransientError, ClientError):
            report.failed.append(product_id)
    return report
