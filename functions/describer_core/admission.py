"""Admission control: SQS messages (EventBridge "Object Created" events) become workflow executions.

Each execution is named after the upload (``WorkflowInput.execution_name``), so a redelivered event
hits ``ExecutionAlreadyExists``, which counts as done. Before starting anything the starter counts
the state machine's RUNNING executions; messages beyond ``max_running_executions`` go back to the
queue as batch item failures and return after the visibility timeout. The limit is soft: two
concurrent batches may overshoot it by at most one batch.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from describer_core.errors import client_error_code
from describer_core.observability import logger
from describer_core.states import ObjectCreatedEvent, WorkflowInput

LIST_EXECUTIONS_PAGE_LIMIT = 1000


class SqsRecord(BaseModel):
    messageId: str
    body: str


class AdmissionOutcome(BaseModel):
    started: list[str] = []
    duplicates: list[str] = []
    deferred: list[str] = []
    malformed: list[str] = []
    failed: list[str] = []

    def batch_response(self) -> dict[str, list[dict[str, str]]]:
        """The ReportBatchItemFailures answer: these messages come back later."""
        return {
            "batchItemFailures": [
                {"itemIdentifier": message_id} for message_id in self.deferred + self.failed
            ]
        }


def running_executions(sfn_client: Any, state_machine_arn: str, limit: int) -> int:
    """How many executions are RUNNING, counted up to ``limit`` (enough to decide admission)."""
    response = sfn_client.list_executions(
        stateMachineArn=state_machine_arn,
        statusFilter="RUNNING",
        maxResults=min(limit, LIST_EXECUTIONS_PAGE_LIMIT),
    )
    running = len(response.get("executions", []))
    return limit if response.get("nextToken") else running


def workflow_input(record: SqsRecord) -> WorkflowInput:
    return WorkflowInput.from_event(ObjectCreatedEvent.model_validate(json.loads(record.body)))


def admit(
    records: list[SqsRecord], sfn_client: Any, state_machine_arn: str, max_running: int
) -> AdmissionOutcome:
    outcome = AdmissionOutcome()
    capacity = max_running - running_executions(sfn_client, state_machine_arn, max_running)
    names_in_batch: set[str] = set()
    for record in records:
        try:
            workflow = workflow_input(record)
        except (ValueError, ValidationError):
            # Retrying cannot fix a message that is not an S3 event; drop it loudly.
            logger.error("not an S3 Object Created event", extra={"message_id": record.messageId})
            outcome.malformed.append(record.messageId)
            continue
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
