"""`make chaos`: uploads under injected faults, re-uploads and duplicate deliveries; nothing may be lost.

The local stack runs with the model host failing calls the way SageMaker and Bedrock fail them
(``faults``). Products are uploaded, some of them again with other bytes while the first run is in
flight (the newer version must win), and some upload events are delivered a second time, the very
message EventBridge sent, onto the admission queue: once while the run is under way and once late,
after everything finished. A capture rule (created here, same event pattern as the stack's) keeps a
copy of each event so it can be sent again byte for byte.

The emulator adds faults of its own (``emulator.patch.EmulatorFaults``): EventBridge refuses product
events from the start until ``OUTAGE_SHARE`` of the final records are written (so some are announced
by their writer, the others later from their outbox by PublishEvents), and a share of SaveResult's
and RecordFailure's invocations time out after their write (``TIMEOUTS_AFTER_WRITE``). A rule of its own
on the product bus keeps every product event.

Every upload is then judged: its run ended (COMPLETED, or superseded by a newer upload), FAILED, or is
stuck (no final record or a run still going); per upload at most one execution (duplicates);
per product the record holds the newest upload (wrong versions). Every final record must have
exactly one final event for its version (none: lost; more: duplicates; an event of a version or
status the record never had: a wrong version), once the outboxes have drained. The last line sums
it up.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchmarks.chaos_photos import (
    FolderUpload,
    FolderVerdict,
    add_photo,
    judge_folders,
    upload_folder,
)
from describer.deployment import Deployment, UploadRef, fetch_records, wait_for_final_records
from describer.local import emulator
from describer.local.emulator.patch import OUTAGE_KIND, EmulatorFaults
from describer.local.samples import SampleFile, photo_folders, synthetic_photos
from describer.local.stack import LocalSettings, injected_faults
from describer_aws.results_table import OUTBOX_INDEX, OUTBOX_KEY, OUTBOX_PENDING, utc_now
from describer_rules.contracts import EVENT_SOURCE, ProductEventType, ProductRecord
from describer_steps.states import ObjectCreatedEvent, WorkflowInput

DEFAULT_FAULTS = (
    "endpoint-throttle=0.2,endpoint-unavailable=0.05,endpoint-slow=0.05,"
    "bedrock-throttle=0.1,bedrock-unavailable=0.05"
)
CHAOS_SEED = 11
CAPTURE_NAME = "describer-chaos-capture"
PRODUCT_EVENTS_NAME = "describer-chaos-product-events"
# EventBridge refuses product events until this share of the final records is written: the writers
# leave their events in the outbox.
OUTAGE_SHARE = 0.5
# Function (logical id) -> share of its successful invocations reported timed out after the write.
TIMEOUTS_AFTER_WRITE = {"SaveResultFunction": 0.2, "RecordFailureFunction": 0.1}
# PublishEvents runs every minute and leaves the last minute to the writers.
OUTBOX_DRAIN_S = 300
_FINAL_EVENTS = {ProductEventType.DESCRIBED.value, ProductEventType.FAILED.value}
_ENDED = {"SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"}


@dataclass
class Upload:
    sample: SampleFile  # the key names the product; the bytes may be another photo's (a re-upload)
    ref: UploadRef
    event: str | None = None  # the EventBridge message, as captured
    redelivered: int = 0

    @property
    def workflow(self) -> WorkflowInput:
        assert self.event is not None, "the upload's event was not captured"
        return WorkflowInput.from_event(ObjectCreatedEvent.model_validate_json(self.event))

    @property
    def identity(self) -> tuple[str, str | None, str]:
        """What every delivery of this upload's event has in common (an execution's input has it too)."""
        return _identity(self.workflow)


def _identity(workflow: WorkflowInput) -> tuple[str, str | None, str]:
    return (workflow.key, workflow.version_id, workflow.sequencer)


@dataclass
class ChaosResult:
    uploads: list[Upload]
    records: dict[str, ProductRecord]
    executions: dict[tuple[str, str | None, str], list[dict[str, Any]]]  # upload identity -> executions
    faults: dict[str, Any]
    task_failures: Counter[str]  # error name -> failed task attempts (retried, or caught)
    elapsed_s: float
    outcomes: dict[int, str] = field(default_factory=dict)  # index in uploads -> completed/failed/stuck
    # Products with several photos: each photo set uploaded, and their verdict.
    folder_uploads: list[FolderUpload] = field(default_factory=list)
    folders: FolderVerdict = field(default_factory=lambda: FolderVerdict([], 0, []))
    # Every product event seen: (product_id, detail-type, status, record_version).
    product_events: list[tuple[str, str, str, int]] = field(default_factory=list)
    events_pending: int = 0  # records whose outbox had not drained at the end
    emulator_faults: dict[str, int] = field(default_factory=dict)  # what the emulator injected

    def latest(self) -> dict[str, Upload]:
        return {upload.sample.product_id: upload for upload in self.uploads}

    def judge(self) -> None:
        latest = self.latest()
        for index, upload in enumerate(self.uploads):
            runs = self.executions.get(upload.identity, [])
            record = self.records.get(upload.sample.product_id)
            if not runs or any(run["status"] not in _ENDED for run in runs):
                self.outcomes[index] = "stuck"
            elif latest[upload.sample.product_id] is upload:
                final = record is not None and upload.ref.is_final_record_of(record)
                status = record.status.value if record is not None and final else "stuck"
                self.outcomes[index] = {"COMPLETED": "completed", "FAILED": "failed"}.get(status, "stuck")
            else:  # superseded: its run must have ended without failing
                self.outcomes[index] = "completed" if runs[-1]["status"] == "SUCCEEDED" else "failed"

    @property
    def duplicate_executions(self) -> int:
        return sum(max(0, len(runs) - 1) for runs in self.executions.values()) + self.folders.duplicates

    def wrong_versions(self) -> list[str]:
        return sorted(
            [
                product_id
                for product_id, upload in self.latest().items()
                if (record := self.records.get(product_id)) is None
                or record.source_version != upload.ref.version
            ]
            + self.folders.wrong
        )

    def final_events(self) -> Counter[tuple[str, int]]:
        """(product, version) -> its final events (Described or Failed)."""
        return Counter((p, v) for p, kind, _, v in self.product_events if kind in _FINAL_EVENTS)

    def lost_events(self) -> list[str]:
        """Final records without a final event for their version."""
        announced = self.final_events()
        return sorted(
            p
            for p, r in self.records.items()
            if r.status.value != "PROCESSING" and not announced[(p, r.record_version)]
        )

    def duplicate_events(self) -> int:
        return sum(count - 1 for count in Counter(self.product_events).values() if count > 1)

    def wrong_event_versions(self) -> list[str]:
        """Events of a version the record never reached, or of its final version with another status."""

        def wrong(product_id: str, status: str, version: int) -> bool:
            record = self.records.get(product_id)
            if record is None or version == 0 or version > record.record_version:
                return True
            return version == record.record_version and status != record.status.value

        return sorted({p for p, _, status, version in self.product_events if wrong(p, status, version)})

    def one_final_event_each(self) -> bool:
        announced = self.final_events()
        return all(
            announced[(p, r.record_version)] == 1
            for p, r in self.records.items()
            if r.status.value != "PROCESSING"
        )

    def _counts(self) -> Counter[str]:
        return Counter(list(self.outcomes.values()) + self.folders.outcomes)

    def summary(self) -> str:
        counts = self._counts()
        uploads = len(self.uploads) + len(self.folders.outcomes)
        each = (
            "every final record has exactly one final event"
            if self.one_final_event_each()
            else ("NOT every final record has exactly one final event")
        )
        return (
            f"chaos: {uploads} uploads, {counts['completed']} completed, "
            f"{counts['failed']} failed, {counts['stuck']} stuck, "
            f"{self.duplicate_executions} duplicate executions, {len(self.wrong_versions())} wrong versions; "
            f"events: {len(self.lost_events())} lost, {self.duplicate_events()} duplicates, "
            f"{len(self.wrong_event_versions())} wrong versions, {self.events_pending} still pending; {each}"
        )

    @property
    def clean(self) -> bool:
        counts = self._counts()
        return not (
            counts["failed"]
            or counts["stuck"]
            or self.duplicate_executions
            or self.wrong_versions()
            or self.lost_events()
            or self.duplicate_events()
            or self.wrong_event_versions()
            or self.events_pending
            or not self.one_final_event_each()
        )


class EventCapture:
    """A rule and queue of its own that receive a copy of every upload event (removed afterwards)."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.events = deployment.client("events")
        self.sqs = deployment.client("sqs")
        self.queue_url = ""
        self.others: list[str] = []  # events of keys that are no upload's (product folders' photos)

    def __enter__(self) -> EventCapture:
        self.queue_url = self.sqs.create_queue(QueueName=CAPTURE_NAME)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        pattern = {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [self.deployment.upload_bucket]}},
        }
        self.events.put_rule(Name=CAPTURE_NAME, EventPattern=json.dumps(pattern), State="ENABLED")
        self.events.put_targets(Rule=CAPTURE_NAME, Targets=[{"Id": "capture", "Arn": queue_arn}])
        return self

    def __exit__(self, *_: object) -> None:
        self.events.remove_targets(Rule=CAPTURE_NAME, Ids=["capture"])
        self.events.delete_rule(Name=CAPTURE_NAME)
        self.sqs.delete_queue(QueueUrl=self.queue_url)

    def collect(self, uploads: list[Upload], timeout_s: float = 60) -> None:
        """Attach to each upload the message EventBridge sent for it.

        By key, in upload order: the emulator's events carry no ``version-id``, so the n-th event of a
        key (by order token: event time, then sequencer) is that key's n-th upload.
        """
        events: dict[str, list[tuple[str, str]]] = {}  # key -> (order token, message)
        wanted = {self.deployment.upload_prefix + upload.sample.key for upload in uploads}
        deadline = time.monotonic() + timeout_s
        while sum(len(events.get(key, [])) for key in wanted) < len(uploads) and time.monotonic() < deadline:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            for message in messages:
                workflow = WorkflowInput.from_event(ObjectCreatedEvent.model_validate_json(message["Body"]))
                events.setdefault(workflow.key, []).append((workflow.order_token, message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        self.others = [message for key, found in events.items() if key not in wanted for _, message in found]
        for key, found in events.items():
            mine = [u for u in uploads if self.deployment.upload_prefix + u.sample.key == key]
            for upload, (_, message) in zip(mine, sorted(found), strict=False):
                upload.event = message
        missing = [u.sample.key for u in uploads if u.event is None]
        if missing:
            raise TimeoutError(f"no upload event seen for {', '.join(missing[:10])}")


class ProductEventCapture:
    """A rule on the product bus and a queue of its own: every product event, as a consumer gets it."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.events = deployment.client("events")
        self.sqs = deployment.client("sqs")
        self.queue_url = ""
        self.seen: list[tuple[str, str, str, int]] = []

    def __enter__(self) -> ProductEventCapture:
        self.queue_url = self.sqs.create_queue(QueueName=PRODUCT_EVENTS_NAME)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        bus = self.deployment.event_bus
        pattern = json.dumps({"source": [EVENT_SOURCE]})
        self.events.put_rule(
            Name=PRODUCT_EVENTS_NAME, EventBusName=bus, EventPattern=pattern, State="ENABLED"
        )
        self.events.put_targets(
            Rule=PRODUCT_EVENTS_NAME, EventBusName=bus, Targets=[{"Id": "events", "Arn": queue_arn}]
        )
        return self

    def __exit__(self, *_: object) -> None:
        bus = self.deployment.event_bus
        self.events.remove_targets(Rule=PRODUCT_EVENTS_NAME, EventBusName=bus, Ids=["events"])
        self.events.delete_rule(Name=PRODUCT_EVENTS_NAME, EventBusName=bus)
        self.sqs.delete_queue(QueueUrl=self.queue_url)

    def drain(self) -> list[tuple[str, str, str, int]]:
        """Every event delivered so far (kept, with the earlier ones)."""
        while messages := self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            for message in messages:
                event = json.loads(message["Body"])
                detail = event["detail"]
                self.seen.append(
                    (
                        detail["product_id"],
                        event["detail-type"],
                        detail["status"],
                        detail.get("record_version", 0),
                    )
                )
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return self.seen


def pending_outboxes(deployment: Deployment) -> int:
    """Records whose outbox still holds events (the sparse by-outbox index)."""
    response = deployment.client("dynamodb").query(
        TableName=deployment.results_table,
        IndexName=OUTBOX_INDEX,
        KeyConditionExpression="#outbox = :pending",
        ExpressionAttributeNames={"#outbox": OUTBOX_KEY},
        ExpressionAttributeValues={":pending": {"S": OUTBOX_PENDING}},
        Select="COUNT",
    )
    return int(response["Count"])


def wait_for_outboxes(deployment: Deployment, timeout_s: float) -> int:
    """Until PublishEvents has published every pending event; how many records still wait."""
    deadline = time.monotonic() + timeout_s
    while (pending := pending_outboxes(deployment)) and time.monotonic() < deadline:
        time.sleep(5)
    return pending


def emulator_faults(settings: LocalSettings, outage: bool, timeouts: dict[str, float]) -> None:
    faults = EmulatorFaults(eventbridge_outage=outage, timeout_after_write=timeouts, seed=CHAOS_SEED)
    emulator.set_faults(settings.state_dir, faults.model_dump_json())


def _upload(deployment: Deployment, sample: SampleFile, key_of: SampleFile | None = None) -> Upload:
    target = key_of or sample
    uploaded_at = utc_now()
    response = deployment.upload(sample.path, target.key)
    return Upload(target, UploadRef.from_response(response, uploaded_at))


def send_again(deployment: Deployment, messages: list[str]) -> None:
    """Captured upload events onto the admission queue once more, byte for byte."""
    for message in messages:
        deployment.client("sqs").send_message(
            QueueUrl=deployment.outputs["AdmissionQueueUrl"], MessageBody=message
        )


def redeliver(deployment: Deployment, uploads: list[Upload]) -> None:
    """The same message again on the admission queue, as a duplicate delivery would bring it."""
    queue_url = deployment.outputs["AdmissionQueueUrl"]
    for upload in uploads:
        assert upload.event is not None
        deployment.client("sqs").send_message(QueueUrl=queue_url, MessageBody=upload.event)
        upload.redelivered += 1


def executions_by_upload(
    deployment: Deployment, uploads: list[Upload]
) -> dict[tuple[str, str | None, str], list[dict[str, Any]]]:
    """Every execution of the state machine for these uploads, by upload identity."""
    wanted = {upload.identity for upload in uploads}
    sfn = deployment.client("stepfunctions")
    found: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {}
    for page in sfn.get_paginator("list_executions").paginate(
        stateMachineArn=deployment.outputs["StateMachineArn"]
    ):
        for execution in page["executions"]:
            workflow = WorkflowInput.model_validate_json(
                sfn.describe_execution(executionArn=execution["executionArn"])["input"]
            )
            if _identity(workflow) in wanted:
                found.setdefault(_identity(workflow), []).append(execution)
    return found


def task_failures(deployment: Deployment, executions: Iterable[dict[str, Any]]) -> Counter[str]:
    """Failed task attempts by error name, over these executions' histories."""
    sfn = deployment.client("stepfunctions")
    failures: Counter[str] = Counter()
    for execution in executions:
        for page in sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution["executionArn"]
        ):
            for event in page["events"]:
                details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails")
                if details:
                    failures[details.get("error", "?")] += 1
    return failures


def wait_until_settled(deployment: Deployment, uploads: list[Upload], timeout_s: float) -> None:
    """Until the admission queue is empty and no execution of these uploads is running."""
    sqs = deployment.client("sqs")
    queue_url = deployment.outputs["AdmissionQueueUrl"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            # Delayed: product folders' settle requests.
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        queued = sum(int(value) for value in attributes.values())
        runs = [run for runs in executions_by_upload(deployment, uploads).values() for run in runs]
        if not queued and all(run["status"] in _ENDED for run in runs):
            return
        time.sleep(1)


def run_chaos(
    settings: LocalSettings,
    products: int,
    reuploads: int,
    redeliveries: int,
    timeout_s: float,
    console: Console,
    photo_products: int = 0,
    timeouts_after_write: dict[str, float] | None = None,
) -> ChaosResult:
    """``timeouts_after_write``: function -> share timed out after the write (``TIMEOUTS_AFTER_WRITE``)."""
    timeouts = TIMEOUTS_AFTER_WRITE if timeouts_after_write is None else timeouts_after_write
    started = time.monotonic()
    deployment = Deployment.local(settings.state_dir)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    emulator.clear_faults_report(settings.state_dir)
    emulator_faults(settings, outage=True, timeouts=timeouts)
    outage_on = [True]
    with (
        tempfile.TemporaryDirectory() as scratch,
        EventCapture(deployment) as capture,
        ProductEventCapture(deployment) as product_events,
    ):
        photos = synthetic_photos(Path(scratch), per_category=products + reuploads, seed=CHAOS_SEED)
        originals, others = photos[:products], photos[products : products + reuploads]
        with Progress(*columns, console=console) as progress:
            sent = progress.add_task("Uploading", total=products + reuploads)
            uploads = []
            for sample in originals:
                uploads.append(_upload(deployment, sample))
                progress.advance(sent)
            folders = photo_folders(Path(scratch) / "folders", photo_products, seed=CHAOS_SEED)
            folder_uploads = [upload_folder(deployment, folder) for folder in folders]
            # Other bytes under the same keys while the first runs are under way: newer versions.
            for other, original in zip(others, originals, strict=False):
                uploads.append(_upload(deployment, other, key_of=original))
                progress.advance(sent)
            if folder_uploads:  # a photo added to a folder while its first run may be under way
                folder_uploads.append(
                    add_photo(deployment, folder_uploads[0], folders[0].photos["2-back.jpg"])
                )
            capture.collect(uploads)
            duplicated = uploads[:: max(1, len(uploads) // max(1, redeliveries))][:redeliveries]
            redeliver(deployment, duplicated)
            resent = capture.others[:: max(1, len(capture.others) // max(1, photo_products))][:photo_products]
            send_again(deployment, resent)
            latest: dict[str, UploadRef] = {upload.sample.product_id: upload.ref for upload in uploads}
            latest |= {upload.folder.product_id: upload.ref for upload in folder_uploads}
            final = progress.add_task("Final records", total=len(latest))

            def on_progress(written: int) -> None:
                progress.update(final, completed=written)
                if outage_on[0] and written >= OUTAGE_SHARE * len(latest):
                    outage_on[0] = False  # EventBridge is back: later writers publish at once
                    emulator_faults(settings, outage=False, timeouts=timeouts)

            try:
                wait_for_final_records(deployment, latest, timeout_s, on_progress=on_progress)
            except TimeoutError as error:
                console.print(f"[red]{error}[/]")  # judged below: those uploads count as stuck
            settle_s = max(30.0, timeout_s / 4)
            wait_until_settled(deployment, uploads, settle_s)
            # Late duplicates, after every run ended: they must start nothing and change nothing.
            redeliver(deployment, duplicated)
            send_again(deployment, resent)
            wait_until_settled(deployment, uploads, settle_s)
            emulator.set_faults(settings.state_dir, None)
            drained = progress.add_task("Outboxes drained (PublishEvents)", total=None)
            events_pending = wait_for_outboxes(deployment, OUTBOX_DRAIN_S)
            progress.update(drained, total=1, completed=1)
            seen = product_events.drain()
    executions = executions_by_upload(deployment, uploads)
    result = ChaosResult(
        uploads=uploads,
        records=fetch_records(deployment, latest),
        executions=executions,
        faults=injected_faults(settings),
        task_failures=task_failures(deployment, (run for runs in executions.values() for run in runs)),
        elapsed_s=time.monotonic() - started,
        folder_uploads=folder_uploads,
        product_events=seen,
        events_pending=events_pending,
        emulator_faults=emulator.injected_faults(settings.state_dir),
    )
    result.folders = judge_folders(deployment, folder_uploads, result.records)
    result.judge()
    return result


def chaos_table(result: ChaosResult) -> Table:
    table = Table(title="Chaos: every upload and what became of it")
    for column in ("product", "upload", "version", "redelivered", "executions", "outcome", "record"):
        table.add_column(column, overflow="fold")
    latest = result.latest()
    for index, upload in enumerate(result.uploads):
        runs = result.executions.get(upload.identity, [])
        record = result.records.get(upload.sample.product_id)
        outcome = result.outcomes.get(index, "?")
        colour = {"completed": "green", "failed": "red"}.get(outcome, "yellow")
        superseded = latest[upload.sample.product_id] is not upload
        shown = ""
        if record is not None and not superseded:
            shown = record.status.value + (f" {record.error_code.value}" if record.error_code else "")
            if record.source_version != upload.ref.version:
                shown += " [red]wrong version[/]"
        table.add_row(
            upload.sample.product_id,
            "re-upload" if any(u.sample is upload.sample for u in result.uploads[:index]) else "first",
            upload.ref.version[:16],
            str(upload.redelivered),
            ", ".join(run["status"] for run in runs) or "none",
            f"[{colour}]{outcome}[/]" + (" (superseded)" if superseded else ""),
            shown,
        )
    for folder_upload, outcome in zip(result.folder_uploads, result.folders.outcomes, strict=True):
        colour = {"completed": "green", "failed": "red"}.get(outcome, "yellow")
        table.add_row(
            folder_upload.folder.product_id,
            f"photo set of {len(folder_upload.ref.photos)}",
            "",
            "",
            "",
            f"[{colour}]{outcome}[/]" + (" (superseded)" if folder_upload.superseded else ""),
            "",
        )
    return table


def faults_table(result: ChaosResult) -> Table:
    """What the model host injected, and what the workflow's tasks failed with (each retried or caught)."""
    report = result.faults
    table = Table(title="Injected faults (model host) and failed task attempts (workflow)")
    table.add_column("fault")
    table.add_column("rate", justify="right")
    table.add_column("injected", justify="right")
    table.add_column("task error")
    table.add_column("attempts", justify="right")
    faults = []
    for kind, rate in report["spec"]["rates"].items():
        route = "invocations" if kind.startswith("endpoint-") else "converse"
        injected = f"{report['injected'].get(kind, 0)} of {report['requests'].get(route, 0)}"
        faults.append((kind, f"{rate:g}", injected))
    for kind, count in sorted(result.emulator_faults.items()):
        if kind == OUTAGE_KIND:
            faults.append((kind, "", f"{count} PutEvents refused"))
        else:
            rate = next((r for p, r in TIMEOUTS_AFTER_WRITE.items() if kind.endswith(p)), 0.0)
            faults.append((kind, f"{rate:g}", f"{count} invocations"))
    errors = [(name, str(count)) for name, count in result.task_failures.most_common()]
    for index in range(max(len(faults), len(errors))):
        left = faults[index] if index < len(faults) else ("", "", "")
        right = errors[index] if index < len(errors) else ("", "")
        table.add_row(*left, *right)
    return table
