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

A photo of a product folder (and its "Object Deleted" event) starts nothing by itself: it becomes a
settle request for the folder, and a settled folder one run over its photo set
(``describer_steps.photo_sets``). An "Object Deleted" event of a one-photo upload changes nothing.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from describer_aws.aws_errors import client_error_code
from describer_aws.observability import logger
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
    except ClientError as error:
        logger.warning("could not shorten deferred messages' wait", extra={"error": client_error_code(error)})
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
    except ClientError as error:
        logger.warning("could not park malformed messages", extra={"error": client_error_code(error)})
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
    folder = photo_sets.folder_of(message) if photo_sets is not None else None
    if folder is not None and message.detail.object.key.endswith("/"):
        return None  # a folder marker (the console's "Create folder"): no photo, nothing changed
    if photo_sets is not None and folder is not None:
        photo_sets.schedule(folder, photo_sets.settle_seconds)
        return folder
    return None if message.deleted else WorkflowInput.from_event(message)


def admit(
    records: list[SqsRecord],
    sfn_client: SFNClient,
    state_machine_arn: str,
    max_running: int,
    photo_sets: PhotoSets | None = None,
) -> AdmissionOutcome:
    outcome = AdmissionOutcome()
    capacity = max_running - running_executions(sfn_client, state_machine_arn, max_running)
    names_in_batch: set[str] = set()
    for record in records:
        try:
            message = parse_message(record)
        except (ValueError, ValidationError):
            # Retrying cannot fix a message that is not an S3 event: it goes to the dead-letter queue.
            logger.error("not an upload event or redrive", extra={"message_id": record.messageId})
            outcome.malformed.append(record.messageId)
            continue
        if capacity <= 0 and isinstance(message, SettleRequest):
            outcome.deferred.append(record.messageId)  # listed again when there is room
            continue
        try:
            step = _photo_set_step(message, photo_sets)
        except ValueError:
            logger.error("settle request without product folders", extra={"message_id": record.messageId})
            outcome.malformed.append(record.messageId)
            continue
        except ClientError as error:
            logger.warning(
                "product folder step failed",
                extra={"message_id": record.messageId, "error": client_error_code(error)},
            )
            outcome.failed.append(record.messageId)
            continue
        if step is None:
            outcome.ignored.append(record.messageId)
            continue
        if isinstance(step, SettleRequest):
            outcome.settling.append(record.messageId)
            continue
        workflow = step
        if workflow.execution_name in names_in_batch:
            outcome.duplicates.append(record.messageId)
            continue
        if capacity <= 0:
            outcome.deferred.append(record.messageId)
            continue
        try:
            sfn_client.start_execution(
                stateMachineArn=state_machine_arn,
                name=workflow.execution_name,
                input=workflow.model_dump_json(),
            )
        except ClientError as error:
            if client_error_code(error) == "ExecutionAlreadyExists":
                outcome.duplicates.append(record.messageId)
                continue
            logger.warning(
                "StartExecution failed",
                extra={"message_id": record.messageId, "error": client_error_code(error)},
            )
            outcome.failed.append(record.messageId)
            continue
        # StartExecution also succeeds for a duplicate of a still-running execution (same name and
        # input), so this may count one twice: admission errs on the side of waiting.
        capacity -= 1
        names_in_batch.add(workflow.execution_name)
        outcome.started.append(record.messageId)
    return outcome
