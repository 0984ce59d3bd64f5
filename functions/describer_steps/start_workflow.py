"""Admission control: SQS messages (EventBridge "Object Created" events, ``describer redrive``'s
redrive requests) become workflow executions.

Each execution is named after the upload (``WorkflowInput.execution_name``), so a redelivered event
hits ``ExecutionAlreadyExists``, which counts as done. Before starting anything the starter counts
the state machine's RUNNING executions; messages beyond ``max_running_executions`` go back to the
queue as batch item failures. Their visibility is first cut to a few seconds, growing with each
receive, so a backlog drains as soon as runs finish rather than in steps of the queue's visibility
timeout. The limit is soft: two concurrent batches may overshoot it by at most one batch.
A message that is not an S3 "Object Created" event cannot start anything: it is moved to the
dead-letter queue at once (where the queue's alarm shows it), or retried if even that fails.

Each message fails alone (``admit``): an AWS error on its calls makes it, and only it, a batch item
failure; the rest of the batch is settled and not redelivered. A key that cannot be decoded is no
poison message: it starts a run like any upload, which ends in a FAILED ``INVALID_KEY`` record.

A photo of a product folder (and its "Object Deleted" event) starts nothing by itself: it becomes a
settle request for the folder, and a settled folder one run over its photo set
(``describer_steps.photo_sets``). An "Object Deleted" event of a one-photo upload changes nothing.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from describer_aws.aws_errors import client_error_code
from describer_aws.observability import logger
from describer_rules.errors import InvalidInput
from describer_steps.photo_sets import PhotoSets, SettleMessage, SettleRequest
from describer_steps.states import ObjectCreatedEvent, RedriveMessage, WorkflowInput

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )
    from mypy_boto3_stepfunctions import SFNClient


LIST_EXECUTIONS_PAGE_LIMIT = 1000
# A deferred message comes back after DEFER_STEP_S x its receive count (at most DEFER_MAX_S), plus
# up to DEFER_JITTER_S so a deferred batch does not return as one herd.
DEFER_STEP_S = 5
DEFER_MAX_S = 60
DEFER_JITTER_S = 5
# StartExecution refusals that no retry changes: the message is parked in the dead-letter queue.
_UNSTARTABLE = frozenset({"InvalidName", "InvalidExecutionInput"})


class SqsRecord(BaseModel):
    messageId: str
    receiptHandle: str
    body: str
    attributes: dict[str, str] = {}

    @property
    def receive_count(self) -> int:
        return int(self.attributes.get("ApproximateReceiveCount", "1"))


class AdmissionOutcome(BaseModel):
    started: list[str] = []
    duplicates: list[str] = []
    deferred: list[str] = []
    malformed: list[str] = []
    failed: list[str] = []
    # Product folders: settle requests sent (or sent again, not settled yet), and deletions of
    # one-photo uploads and product folders' folder markers, which describe nothing.
    settling: list[str] = []
    ignored: list[str] = []

    def batch_response(self) -> dict[str, list[dict[str, str]]]:
        """The ReportBatchItemFailures answer: these messages come back later."""
        return {
            "batchItemFailures": [
                {"itemIdentifier": message_id} for message_id in self.deferred + self.failed
            ]
        }


def _error_name(error: ClientError | BotoCoreError) -> str:
    return client_error_code(error) if isinstance(error, ClientError) else type(error).__name__


def running_executions(sfn_client: SFNClient, state_machine_arn: str, limit: int) -> int:
    """How many executions are RUNNING, counted up to ``limit`` (enough to decide admission)."""
    response = sfn_client.list_executions(
        stateMachineArn=state_machine_arn,
        statusFilter="RUNNING",
        maxResults=min(limit, LIST_EXECUTIONS_PAGE_LIMIT),
    )
    running = len(response.get("executions", []))
    return limit if response.get("nextToken") else running


def defer_seconds(record: SqsRecord) -> int:
    return min(DEFER_MAX_S, DEFER_STEP_S * record.receive_count) + random.randint(0, DEFER_JITTER_S)


def reoffer_soon(sqs_client: SQSClient, queue_url: str, records: list[SqsRecord]) -> None:
    """Shorten deferred messages' invisibility; on failure they simply wait the queue's timeout."""
    if not records:
        return
    entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
        {"Id": str(index), "ReceiptHandle": record.receiptHandle, "VisibilityTimeout": defer_seconds(record)}
        for index, record in enumerate(records)
    ]
    try:
        response = sqs_client.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
    except (ClientError, BotoCoreError) as error:
        logger.warning("could not shorten deferred messages' wait", extra={"error": _error_name(error)})
        return
    if response.get("Failed"):
        logger.warning(
            "could not shorten some deferred messages' wait", extra={"failed": len(response["Failed"])}
        )


def park_malformed(sqs_client: SQSClient, dead_letter_queue_url: str, records: list[SqsRecord]) -> list[str]:
    """Send malformed messages to the dead-letter queue as they came; the ids that could not be sent."""
    if not records:
        return []
    entries: list[SendMessageBatchRequestEntryTypeDef] = [
        {"Id": str(index), "MessageBody": record.body} for index, record in enumerate(records)
    ]
    try:
        response = sqs_client.send_message_batch(QueueUrl=dead_letter_queue_url, Entries=entries)
    except (ClientError, BotoCoreError) as error:
        logger.warning("could not park malformed messages", extra={"error": _error_name(error)})
        return [record.messageId for record in records]
    return [records[int(failed["Id"])].messageId for failed in response.get("Failed", [])]


def parse_message(record: SqsRecord) -> WorkflowInput | SettleRequest | ObjectCreatedEvent:
    """What a message asks for: a redrive's run (``describer redrive``), a product folder's settle
    check, or an S3 event."""
    body = json.loads(record.body)
    if isinstance(body, dict) and "redrive" in body:
        return RedriveMessage.model_validate(body).redrive
    if isinstance(body, dict) and "settle" in body:
        return SettleMessage.model_validate(body).settle
    return ObjectCreatedEvent.model_validate(body)


def _photo_set_step(
    message: WorkflowInput | SettleRequest | ObjectCreatedEvent, photo_sets: PhotoSets | None
) -> WorkflowInput | SettleRequest | None:
    """A run to start now, a settle request to send (after the window), or None: nothing to do."""
    if isinstance(message, WorkflowInput):
        return message
    if isinstance(message, SettleRequest):
        if photo_sets is None:
            raise ValueError("settle request without product folder support")
        settled = photo_sets.settled(message)
        if isinstance(settled, int):
            photo_sets.schedule(message, settled)
            return message
        return settled
    try:
        folder = photo_sets.folder_of(message) if photo_sets is not None else None
    except InvalidInput:
        # A key that cannot be decoded names no folder: it runs as a one-photo upload, whose Prepare
        # fails on the same key, so the upload ends in a FAILED INVALID_KEY record like any other.
        folder = None
    if folder is not None and message.detail.object.key.endswith("/"):
        return None  # a folder marker (the console's "Create folder"): no photo, nothing changed
    if photo_sets is not None and folder is not None:
        photo_sets.schedule(folder, photo_sets.settle_seconds)
        return folder
    return None if message.deleted else WorkflowInput.from_event(message)


# A message's fate: the AdmissionOutcome list it goes in.
Fate = Literal["started", "duplicates", "deferred", "malformed", "failed", "settling", "ignored"]


class _Admission:
    """One batch: each message's fate is its own (``AdmissionOutcome``), whatever another's was."""

    def __init__(
        self,
        sfn_client: SFNClient,
        state_machine_arn: str,
        capacity: int,
        photo_sets: PhotoSets | None,
    ) -> None:
        self.sfn, self.state_machine_arn, self.capacity = sfn_client, state_machine_arn, capacity
        self.photo_sets = photo_sets
        self.outcome = AdmissionOutcome()
        self.names_in_batch: set[str] = set()

    def admit(self, record: SqsRecord) -> None:
        """Sort one message into the outcome; an error fails this message alone (see ``admit``)."""
        fate: Fate
        try:
            fate = self._fate(record)
        except (ClientError, BotoCoreError) as error:
            logger.warning(
                "admission step failed", extra={"message_id": record.messageId, "error": _error_name(error)}
            )
            fate = "failed"
        except Exception:
            # A bug retried a hundred times stays a bug: the dead-letter queue's alarm shows it.
            logger.exception("unexpected admission error", extra={"message_id": record.messageId})
            fate = "malformed"
        getattr(self.outcome, fate).append(record.messageId)

    def _fate(self, record: SqsRecord) -> Fate:
        try:
            message = parse_message(record)
        except (ValueError, ValidationError):
            # Retrying cannot fix a message that is not an S3 event: it goes to the dead-letter queue.
            logger.error("not an upload event or redrive", extra={"message_id": record.messageId})
            return "malformed"
        if self.capacity <= 0 and isinstance(message, SettleRequest):
            return "deferred"  # listed again when there is room
        try:
            step = _photo_set_step(message, self.photo_sets)
        except ValueError as error:  # a settle request without product folders, an event time not a time
            logger.error(
                "message cannot be acted on", extra={"message_id": record.messageId, "error": str(error)}
            )
            return "malformed"
        if step is None:
            return "ignored"
        if isinstance(step, SettleRequest):
            return "settling"
        if step.execution_name in self.names_in_batch:
            return "duplicates"
        if self.capacity <= 0:
            return "deferred"
        try:
            self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=step.execution_name, input=step.model_dump_json()
            )
        except ClientError as error:
            code = client_error_code(error)
            if code == "ExecutionAlreadyExists":
                return "duplicates"
            if code in _UNSTARTABLE:
                logger.error("run cannot be started", extra={"message_id": record.messageId, "error": code})
                return "malformed"
            raise
        # StartExecution also succeeds for a duplicate of a still-running execution (same name and
        # input), so this may count one twice: admission errs on the side of waiting.
        self.capacity -= 1
        self.names_in_batch.add(step.execution_name)
        return "started"


def admit(
    records: list[SqsRecord],
    sfn_client: SFNClient,
    state_machine_arn: str,
    max_running: int,
    photo_sets: PhotoSets | None = None,
) -> AdmissionOutcome:
    """Each message started, counted a duplicate, deferred, settling, ignored, malformed or failed.

    A message fails alone: an AWS error on its own calls (ListObjectVersions, SendMessage,
    StartExecution) makes it a batch item failure, retried by SQS up to the queue's
    ``maxReceiveCount`` and then dead-lettered; an unexpected error parks it in the dead-letter queue
    at once. The rest of the batch is done and not redelivered, so settle requests already sent are
    not sent again. Only counting the running executions fails the whole batch, before any message.
    """
    capacity = max_running - running_executions(sfn_client, state_machine_arn, max_running)
    admission = _Admission(sfn_client, state_machine_arn, capacity, photo_sets)
    for record in records:
        admission.admit(record)
    return admission.outcome
