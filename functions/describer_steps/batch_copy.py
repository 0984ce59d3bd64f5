"""Copy by Bedrock batch inference (`describer backfill --copy batch`): queue, submit, collect.

1. **QueueCopy** (a DescribeProduct run with ``copy: batch``, after MergeAttributes): the record is
   written PROCESSING with ``stage: COPY_QUEUED`` and the attributes, conditionally on the run being
   the product's current one, and the run's SaveResult input without its description is queued in S3.
2. **Submit** (the backfill, once its map is done): the queued products' copy requests, one JSONL
   line per product and locale, the very Converse request WriteDescription sends (``CopyWriter``),
   go into one job per locale (split within the job limits). Fewer than a job's minimum are
   written on demand at once.
3. **Collect** (the backfill polls until no job is running): every output line is joined to its
   record by id (``describer_rules.batch_output``) and checked by the same content rules as an
   on-demand reply; a locale without a usable reply is written on demand (``CopyWriter.write_locale``,
   retries included) and counted by reason. The record is saved by SaveResult's own code
   (``save_result``) with a ledger of batch and on-demand tokens. A copy that still cannot be written
   fails the record as WriteDescription would (DESCRIPTION_INVALID, ...), and one that Bedrock could
   not write for now (throttled, unavailable) is queued again: nothing is lost, a rerun resumes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from describer_aws.batch_jobs import BatchJobs, CopyStore, SubmittedJob
from describer_aws.product_events import ProductEvents, publish_committed
from describer_aws.results_table import ResultsTable, utc_now
from describer_rules.batch_output import (
    MIN_RECORDS_PER_JOB,
    Fallback,
    JobStatus,
    chunks,
    fallbacks_of,
    input_line,
    read_output,
    record_id,
)
from describer_rules.catalogue import Catalogue
from describer_rules.content_rules import check_reply
from describer_rules.contracts import (
    LocaleContent,
    PurchaseMode,
    RecordStage,
    Status,
    TokenUsage,
)
from describer_rules.cost_ledger import described_ledger, ledger_metrics
from describer_rules.errors import PipelineError
from describer_rules.prompts import user_message
from describer_rules.style_guide import StyleGuide
from describer_steps.save_result import save_result
from describer_steps.settings import DescriptionSettings
from describer_steps.states import DescriptionResult, MergedAttributes, ProductIdentity, SaveInput
from describer_steps.write_description import CopyWriter, _Reply


class QueuedCopy(BaseModel):
    """A product whose copy waits for a batch job: its run's SaveResult input, less the description."""

    execution_name: str
    execution_start: str
    product: ProductIdentity
    prepare_ms: int = 0
    merged: MergedAttributes


class QueueOutput(BaseModel):
    product_id: str
    queued: bool = Field(description="False when a newer upload took the record over meanwhile")


class Submission(BaseModel):
    """Jobs submitted together: collected together, once every one of them has ended."""

    submission_id: str
    created_at: str
    jobs: list[SubmittedJob] = Field(default_factory=list)
    products: dict[str, QueuedCopy] = Field(default_factory=dict)
    bad_lines_counted: bool = Field(
        default=False, description="A pass was cut short: its bad lines are counted"
    )


@dataclass
class CopyReport:
    """What a submit or collect pass did, for the backfill's output and the CLI's table."""

    queued: int = 0
    submitted_jobs: int = 0
    open_jobs: int = 0
    saved: int = 0
    failed: int = 0
    requeued: int = 0
    not_current: int = 0
    batch_copies: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)
    bad_lines: Counter[str] = field(default_factory=Counter)
    ledger_totals: dict[str, float] = field(default_factory=dict)  # the saved records' ledgers, summed

    def as_dict(self) -> dict[str, Any]:
        return {
            name: dict(value) if isinstance(value, Counter) else value
            for name, value in self.__dict__.items()
        }


def queue_copy(request: QueuedCopy, table: ResultsTable, store: CopyStore) -> QueueOutput:
    """Save the attributes with ``stage: COPY_QUEUED`` and queue the copy request (step 1)."""
    merged = request.merged
    record = request.product.record(
        Status.PROCESSING,
        request.execution_name,
        stage=RecordStage.COPY_QUEUED,
        attributes=merged.attributes,
        unknown_attributes=merged.unknown_attributes,
        confidence=merged.confidence,
        alternatives=merged.alternatives,
        photos_agreed=merged.photos_agreed,
        needs_review=merged.needs_review or request.product.category_review,
        model_ids={"attributes": merged.endpoint},
    )
    # Queued first: a record marked COPY_QUEUED always has its request in S3 (a retry rewrites both).
    store.put(store.queued_key(request.product.product_id), request.model_dump_json())
    queued = table.write_if_current(record)
    if not queued:
        store.delete([store.queued_key(request.product.product_id)])
    return QueueOutput(product_id=request.product.product_id, queued=queued)


class BatchCopier:
    """Submits the queued copy requests as batch jobs and collects what the jobs wrote (steps 2, 3)."""

    def __init__(
        self,
        store: CopyStore,
        jobs: BatchJobs,
        table: ResultsTable,
        events: ProductEvents,
        catalogue: Catalogue,
        settings: DescriptionSettings,
        bedrock_runtime: Any,
        style: StyleGuide | None = None,
        clock: Callable[[], float] = time.time,
        min_records: int = MIN_RECORDS_PER_JOB,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.table = table
        self.events = events
        self.catalogue = catalogue
        self.settings = settings
        self.bedrock_runtime = bedrock_runtime
        self.style = style
        self.clock = clock
        self.min_records = min_records
        self.should_stop = should_stop

    def writer(self, queued: QueuedCopy) -> CopyWriter:
        return CopyWriter(
            self.catalogue.category(queued.product.category),
            queued.merged.attributes,
            queued.merged.confidence,
            self.bedrock_runtime,
            self.settings,
            self.style,
        )

    # --- Submit -----------------------------------------------------------------------------------

    def submit(self) -> CopyReport:
        """Every queued product into jobs (one submission); too few for a job are written on demand."""
        report = CopyReport()
        keys = self.store.queued_keys()
        queued = {}
        for key in keys:
            copy = QueuedCopy.model_validate_json(self.store.get(key))
            queued[copy.product.product_id] = copy
        report.queued = len(queued)
        if not queued:
            return report
        if len(queued) < self.min_records:
            for copy in queued.values():
                self._finish(
                    copy, {}, dict.fromkeys(self.settings.locales, Fallback.BELOW_JOB_MINIMUM), report
                )
            self.store.delete(keys)
            return report
        submission_id = time.strftime("%Y%m%d%H%M%S", time.gmtime(self.clock()))
        submission = Submission(submission_id=submission_id, created_at=utc_now(), products=queued)
        products = sorted(queued)
        for locale in self.settings.locales:
            lines: dict[str, str] = {}
            owners: dict[str, str] = {}
            for index, product_id in enumerate(products):
                rid = record_id(index)
                writer = self.writer(queued[product_id])
                message = user_message(writer.category, writer.attributes, locale, [])
                request = writer.request(message)
                request.pop("modelId")
                lines[rid] = input_line(rid, request)
                owners[rid] = product_id
            sizes = {rid: len(line.encode()) + 1 for rid, line in lines.items()}
            for part, rids in enumerate(chunks(list(lines), sizes)):
                name = f"{locale}-{part}"
                key = self.store.input_key(submission_id, name)
                self.store.put(key, "\n".join(lines[rid] for rid in rids) + "\n")
                arn = self.jobs.create(
                    f"copy-{submission_id}-{name}",
                    self.settings.bedrock_model_id,
                    f"s3://{self.store.bucket}/{key}",
                    self.store.output_uri(submission_id),
                )
                submission.jobs.append(
                    SubmittedJob(
                        locale=locale, job_arn=arn, input_key=key, records={r: owners[r] for r in rids}
                    )
                )
                report.submitted_jobs += 1
        # The submission names every product before the queue lets go of them.
        self.store.put(self.store.submission_key(submission_id), submission.model_dump_json())
        self.store.delete(keys)
        report.open_jobs = report.submitted_jobs
        return report

    # --- Collect ----------------------------------------------------------------------------------

    def collect(self) -> CopyReport:
        """Every submission whose jobs have all ended: joined, checked, saved; the rest counted as open."""
        report = CopyReport()
        for key in self.store.submission_keys():
            submission = Submission.model_validate_json(self.store.get(key))
            statuses = {job.job_arn: self.jobs.status(job.job_arn)[0] for job in submission.jobs}
            still = [arn for arn, status in statuses.items() if not status.ended]
            if still:
                report.open_jobs += len(still)
                continue
            if self._collect(submission, statuses, report):
                self.store.delete([key])
            else:
                report.open_jobs += 1  # cut short by the time left: the next pass goes on
                break
        return report

    def _collect(self, submission: Submission, statuses: dict[str, JobStatus], report: CopyReport) -> bool:
        """Finish the submission's products; False (the rest written back) when told to stop early."""
        replies: dict[str, dict[str, dict[str, Any]]] = {pid: {} for pid in submission.products}
        reasons: dict[str, dict[str, Fallback]] = {pid: {} for pid in submission.products}
        for job in submission.jobs:
            status = statuses[job.job_arn]
            lines = self.store.output_lines(submission.submission_id, job) if status.has_output else None
            output = None if lines is None else read_output(lines, job.records)
            if output is not None:
                if not submission.bad_lines_counted:
                    report.bad_lines.update(output.bad_lines)
                for rid, model_output in output.outputs.items():
                    replies.get(job.records[rid], {})[job.locale] = model_output
            for rid, reason in fallbacks_of(status, output, job.records).items():
                reasons.get(job.records[rid], {})[job.locale] = reason
        for done, (product_id, queued) in enumerate(submission.products.items()):
            if self.should_stop():
                rest = dict(list(submission.products.items())[done:])
                remaining = submission.model_copy(update={"products": rest, "bad_lines_counted": True})
                self.store.put(
                    self.store.submission_key(submission.submission_id), remaining.model_dump_json()
                )
                return False
            self._finish(queued, replies[product_id], reasons[product_id], report)
        return True

    def _finish(
        self,
        queued: QueuedCopy,
        replies: dict[str, dict[str, Any]],
        reasons: dict[str, Fallback],
        report: CopyReport,
    ) -> None:
        """Check each locale's batch reply, write the others on demand, save (or fail, or queue again)."""
        current = self.table.get(queued.product.product_id)
        if (
            current is None
            or current.execution_name != queued.execution_name
            or current.status != Status.PROCESSING
        ):
            report.not_current += 1  # saved by an earlier pass, or a newer upload took over
            return
        started = time.monotonic()
        writer = self.writer(queued)
        content: dict[str, LocaleContent] = {}
        batch_tokens: dict[str, TokenUsage] = {}
        on_demand_tokens: dict[str, TokenUsage] = {}
        fallbacks = 0
        for locale in self.settings.locales:
            reason = reasons.get(locale)
            problems: list[str] = []
            if reason is None and locale in replies:
                reply = _Reply.parse(replies[locale])
                batch_tokens[locale] = TokenUsage(input=reply.input_tokens, output=reply.output_tokens)
                checked, broken = check_reply(reply.payload, reply.stop_reason, writer.rules(locale))
                if checked is not None and not broken:
                    content[locale] = checked
                    report.batch_copies += 1
                    continue
                # The batch reply was the first attempt: the on-demand call is the retry naming its rules.
                reason, problems = Fallback.INVALID, [str(violation) for violation in broken]
            report.fallbacks[(reason or Fallback.MISSING).value] += 1
            fallbacks += 1
            try:
                written = writer.write_locale(locale, problems)
            except PipelineError as error:
                if error.retryable:  # throttled or unavailable: a rerun writes it
                    self.store.put(self.store.queued_key(queued.product.product_id), queued.model_dump_json())
                    report.requeued += 1
                else:
                    self._fail(queued, error, report)
                return
            content[locale] = written.content
            on_demand_tokens[locale] = written.tokens
        usage = {
            locale: TokenUsage(
                input=batch_tokens.get(locale, TokenUsage()).input
                + on_demand_tokens.get(locale, TokenUsage()).input,
                output=batch_tokens.get(locale, TokenUsage()).output
                + on_demand_tokens.get(locale, TokenUsage()).output,
            )
            for locale in self.settings.locales
        }
        description = DescriptionResult(
            text=content[self.settings.default_locale].description,
            model_id=self.settings.bedrock_model_id,
            input_tokens=sum(tokens.input for tokens in usage.values()),
            output_tokens=sum(tokens.output for tokens in usage.values()),
            attempts=1,
            description_ms=int((time.monotonic() - started) * 1000),
            content=content,
            token_usage=usage,
        )
        request = SaveInput(
            execution_name=queued.execution_name,
            execution_start=queued.execution_start,
            product=queued.product,
            prepare_ms=queued.prepare_ms,
            merged=queued.merged,
            description=description,
        )
        ledger = described_ledger(
            prepare_ms=queued.prepare_ms,
            endpoint_ms=queued.merged.endpoint_ms,
            endpoint_calls=queued.merged.endpoint_calls,
            # Only on-demand fallbacks hold a Lambda while Bedrock writes; batch replies cost no wait.
            description_ms=description.description_ms if on_demand_tokens else 0,
            token_usage=batch_tokens,
            mode=PurchaseMode.BATCH,
            on_demand_usage=on_demand_tokens,
            fallbacks=fallbacks,
            path="batch",
        )
        if save_result(request, self.table, self.events, ledger).saved:
            report.saved += 1
            for name, value in ledger_metrics(ledger).items():
                report.ledger_totals[name] = report.ledger_totals.get(name, 0) + value
        else:
            report.not_current += 1

    def _fail(self, queued: QueuedCopy, error: PipelineError, report: CopyReport) -> None:
        """The copy cannot be written: the FAILED record WriteDescription's failure would leave."""
        record = queued.product.record(
            Status.FAILED,
            queued.execution_name,
            error_code=error.code,
            error_message=error.detail,
            model_ids={"attributes": queued.merged.endpoint, "description": self.settings.bedrock_model_id},
        )
        if self.table.write_final(record).written:
            publish_committed(record.product_id, self.table, self.events)
            report.failed += 1
        else:
            report.not_current += 1
