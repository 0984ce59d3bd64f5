"""`describer status`: one table of how the deployed (or local) stack is doing right now.

It reads what the dashboard shows, from the same sources: the results table's ``by-status`` index
(records by status and, for FAILED, error code, updated within ``--since``), its sparse ``by-review``
index (the review queue), the oldest PROCESSING record and what Step Functions says of its run, the
admission queue and the dead-letter queues (SQS attributes, and the age of the oldest admission
message from CloudWatch where AWS publishes it), and the SageMaker endpoint's instances. On the local
stack the local model host stands in for the endpoint, and the line says so. Beside them, what the
runs of the window cost, by day: each final record's cost ledger (``cost``) priced with
``describer/prices.json`` (``describer.cost.cost_by_day``), the endpoint at the autoscaling target.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from describer.cost import DayCost, cost_by_day, load_prices
from describer.deployment import Deployment
from describer.redrive import since_timestamp
from describer.sagemaker.launcher import DEFAULT_ENDPOINT_INSTANCE_TYPE
from describer.sagemaker.scaling import TARGET_UTILISATION
from describer_aws.results_table import REVIEW_KEY, REVIEW_PENDING, _from_item
from describer_rules.contracts import CostLedger, Status

DEFAULT_SINCE = timedelta(hours=24)
# BatchGetItem's most keys a request.
_BATCH_GET_KEYS = 100
# The CloudWatch metric the age alarm watches (AWS publishes SQS metrics every minute).
AGE_METRIC = ("AWS/SQS", "ApproximateAgeOfOldestMessage")


class QueueDepth(BaseModel):
    name: str
    visible: int
    in_flight: int
    oldest_age_s: float | None = None  # from CloudWatch; None where no datapoint exists


class OldestProcessing(BaseModel):
    product_id: str
    updated_at: str
    execution_name: str | None
    execution_status: str | None  # None: Step Functions does not know the run


class EndpointState(BaseModel):
    name: str
    status: str
    instances: int | None
    note: str = ""


class StackStatus(BaseModel):
    stack_name: str
    since: str
    by_status: dict[str, int]
    failed_by_code: dict[str, int]
    review_queue: int
    oldest_processing: OldestProcessing | None
    queues: list[QueueDepth]
    endpoint: EndpointState
    cost_by_day: list[DayCost] = []


def _query(deployment: Deployment, **arguments: Any) -> list[dict[str, Any]]:
    paginator = deployment.client("dynamodb").get_paginator("query")
    pages = paginator.paginate(TableName=deployment.results_table, **arguments)
    return [item for page in pages for item in page["Items"]]


def _count(deployment: Deployment, **arguments: Any) -> int:
    paginator = deployment.client("dynamodb").get_paginator("query")
    pages = paginator.paginate(TableName=deployment.results_table, Select="COUNT", **arguments)
    return sum(int(page["Count"]) for page in pages)


def _by_status(deployment: Deployment, status: Status, since: str, **arguments: Any) -> dict[str, Any]:
    return {
        "IndexName": deployment.outputs["ResultsStatusIndexName"],
        "KeyConditionExpression": "#status = :status AND #updated_at >= :since",
        "ExpressionAttributeNames": {"#status": "status", "#updated_at": "updated_at"},
        "ExpressionAttributeValues": {":status": {"S": status.value}, ":since": {"S": since}},
        **arguments,
    }


def record_counts(deployment: Deployment, since: str) -> tuple[dict[str, int], dict[str, int]]:
    """Records updated at or after ``since``: how many per status, and the FAILED ones per error code."""
    failed = _query(
        deployment,
        **_by_status(deployment, Status.FAILED, since),
        ProjectionExpression="error_code",  # projected by the index
    )
    codes = Counter(item.get("error_code", {}).get("S", "(none)") for item in failed)
    counts = {
        Status.COMPLETED.value: _count(deployment, **_by_status(deployment, Status.COMPLETED, since)),
        Status.FAILED.value: len(failed),
        Status.PROCESSING.value: _count(deployment, **_by_status(deployment, Status.PROCESSING, since)),
    }
    return counts, dict(codes.most_common())


def run_costs(deployment: Deployment, since: str) -> list[DayCost]:
    """What the final records updated since ``since`` cost, by day, from their cost ledgers."""
    keys = [
        item["product_id"]
        for status in (Status.COMPLETED, Status.FAILED)
        for item in _query(
            deployment, **_by_status(deployment, status, since), ProjectionExpression="product_id"
        )
    ]
    dynamodb = deployment.client("dynamodb")
    runs: list[tuple[str, CostLedger | None, str | None]] = []
    for start in range(0, len(keys), _BATCH_GET_KEYS):
        request: dict[str, Any] = {
            deployment.results_table: {
                "Keys": [{"product_id": key} for key in keys[start : start + _BATCH_GET_KEYS]],
                "ProjectionExpression": "updated_at, #cost, model_ids",
                "ExpressionAttributeNames": {"#cost": "cost"},
            }
        }
        while request:
            response = dynamodb.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(deployment.results_table, []):
                record = _from_item(item)
                ledger = CostLedger.model_validate(record["cost"]) if "cost" in record else None
                runs.append((record["updated_at"], ledger, record.get("model_ids", {}).get("description")))
            request = response.get("UnprocessedKeys") or {}
    return cost_by_day(runs, load_prices(), DEFAULT_ENDPOINT_INSTANCE_TYPE, TARGET_UTILISATION)


def review_queue(deployment: Deployment) -> int:
    return _count(
        deployment,
        IndexName=deployment.review_index,
        KeyConditionExpression="#review = :pending",
        ExpressionAttributeNames={"#review": REVIEW_KEY},
        ExpressionAttributeValues={":pending": {"S": REVIEW_PENDING}},
    )


def oldest_processing(deployment: Deployment) -> OldestProcessing | None:
    """The PROCESSING record updated longest ago (whatever the window), and its run's status."""
    response = deployment.client("dynamodb").query(
        TableName=deployment.results_table,
        IndexName=deployment.outputs["ResultsStatusIndexName"],
        KeyConditionExpression="#status = :processing",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":processing": {"S": Status.PROCESSING.value}},
        ScanIndexForward=True,
        Limit=1,
    )
    if not response["Items"]:
        return None
    product_id = response["Items"][0]["product_id"]["S"]
    # The index projects no execution name: the record itself has it.
    item = deployment.client("dynamodb").get_item(
        TableName=deployment.results_table, Key={"product_id": {"S": product_id}}
    )["Item"]
    name = item.get("execution_name", {}).get("S")
    return OldestProcessing(
        product_id=product_id,
        updated_at=item["updated_at"]["S"],
        execution_name=name,
        execution_status=_execution_status(deployment, name) if name else None,
    )


def _execution_status(deployment: Deployment, name: str) -> str | None:
    machine = deployment.outputs["StateMachineArn"]
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:{name}"
    try:
        return str(deployment.client("stepfunctions").describe_execution(executionArn=arn)["status"])
    except ClientError as error:
        if error.response["Error"]["Code"] == "ExecutionDoesNotExist":
            return None
        raise


def queue_depth(deployment: Deployment, output: str, with_age: bool = False) -> QueueDepth:
    url = deployment.outputs[output]
    attributes = deployment.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return QueueDepth(
        name=output.removesuffix("Url"),
        visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        oldest_age_s=_oldest_message_age(deployment, name) if with_age else None,
    )


def _oldest_message_age(deployment: Deployment, queue_name: str) -> float | None:
    """The latest one-minute maximum of the queue's ApproximateAgeOfOldestMessage, if there is one."""
    now = datetime.now(UTC)
    namespace, metric = AGE_METRIC
    datapoints = deployment.client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": "QueueName", "Value": queue_name}],
        StartTime=now - timedelta(minutes=15),
        EndTime=now,
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    if not datapoints:
        return None
    return float(max(datapoints, key=lambda point: point["Timestamp"])["Maximum"])


def endpoint_state(deployment: Deployment, model_host_url: str | None) -> EndpointState:
    """The SageMaker endpoint's status and instances; on the local stack, the model host standing in."""
    name = deployment.outputs.get("EndpointName") or _stack_parameter(deployment, "EndpointName")
    if model_host_url is not None:
        try:
            with urllib.request.urlopen(f"{model_host_url}/ping", timeout=2) as reply:
                status = "InService" if reply.status == 200 else f"HTTP {reply.status}"
        except (urllib.error.URLError, OSError):
            status = "not answering"
        note = f"the local model host at {model_host_url} stands in (one process, no instances)"
        return EndpointState(name=name, status=status, instances=None, note=note)
    try:
        endpoint = deployment.client("sagemaker").describe_endpoint(EndpointName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ValidationException":  # SageMaker's "Could not find"
            return EndpointState(name=name, status="not deployed", instances=0, note="see docs/deploying.md")
        raise
    variants = endpoint.get("ProductionVariants", [])
    instances = sum(int(variant.get("CurrentInstanceCount", 0)) for variant in variants)
    return EndpointState(name=name, status=str(endpoint["EndpointStatus"]), instances=instances)


def _stack_parameter(deployment: Deployment, name: str) -> str:
    """A deploy parameter (a stack deployed before the EndpointName output has it only there)."""
    (stack,) = deployment.client("cloudformation").describe_stacks(StackName=deployment.stack_name)["Stacks"]
    values = {
        p["ParameterKey"]: p.get("ResolvedValue", p["ParameterValue"]) for p in stack.get("Parameters", [])
    }
    return str(values[name])


def stack_status(deployment: Deployment, since: str, model_host_url: str | None = None) -> StackStatus:
    counts, codes = record_counts(deployment, since)
    return StackStatus(
        stack_name=deployment.stack_name,
        since=since,
        by_status=counts,
        failed_by_code=codes,
        review_queue=review_queue(deployment),
        oldest_processing=oldest_processing(deployment),
        queues=[
            queue_depth(deployment, "AdmissionQueueUrl", with_age=True),
            queue_depth(deployment, "AdmissionDeadLetterQueueUrl"),
            queue_depth(deployment, "StoppedExecutionDeadLetterQueueUrl"),
        ],
        endpoint=endpoint_state(deployment, model_host_url),
        cost_by_day=run_costs(deployment, since),
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "no CloudWatch datapoint"
    return f"oldest {seconds:.0f} s"


def status_table(status: StackStatus) -> Table:
    table = Table(title=f"{status.stack_name}: records updated since {status.since}")
    table.add_column("what", style="bold")
    table.add_column("now", justify="right")
    table.add_column("detail", overflow="fold")
    for name, count in status.by_status.items():
        colour = {"COMPLETED": "green", "FAILED": "red"}.get(name, "yellow")
        table.add_row(f"[{colour}]{name}[/]", str(count), "")
        if name == Status.FAILED.value:
            for code, failed in status.failed_by_code.items():
                table.add_row(f"  {code}", str(failed), "")
    table.add_row(
        "review queue", str(status.review_queue), "COMPLETED records with review PENDING (all time)"
    )
    oldest = status.oldest_processing
    if oldest is None:
        table.add_row("oldest PROCESSING", "none", "")
    else:
        run = oldest.execution_status or "unknown to Step Functions"
        table.add_row(
            "oldest PROCESSING",
            oldest.product_id,
            f"since {oldest.updated_at}; run {oldest.execution_name or '?'}: {run}",
        )
    for queue in status.queues:
        detail = f"{queue.in_flight} in flight"
        if queue.name == "AdmissionQueue":
            detail += f"; {_age(queue.oldest_age_s)}"
        colour = "red" if "DeadLetter" in queue.name and queue.visible else ""
        table.add_row(queue.name, f"[{colour}]{queue.visible}[/]" if colour else str(queue.visible), detail)
    for day in status.cost_by_day:
        parts = ", ".join(f"{name} ${dollars:.4f}" for name, dollars in day.dollars.items() if dollars)
        unpriced = f"; {day.without_ledger} without a ledger" if day.without_ledger else ""
        table.add_row(
            f"cost {day.day}",
            f"${day.total:.4f}",
            f"{day.products} final records{unpriced}: {parts or 'nothing metered'}"
            f" (endpoint at {TARGET_UTILISATION:.0%} busy)",
        )
    endpoint = status.endpoint
    instances = "-" if endpoint.instances is None else str(endpoint.instances)
    table.add_row(
        f"endpoint {endpoint.name}",
        instances,
        f"{endpoint.status}" + (f"; {endpoint.note}" if endpoint.note else ""),
    )
    return table


def status(
    args: argparse.Namespace, deployment: Deployment, console: Console, model_host_url: str | None
) -> int:
    since = args.since or since_timestamp((datetime.now(UTC) - DEFAULT_SINCE).isoformat())
    result = stack_status(deployment, since, model_host_url)
    if args.json:
        console.print_json(result.model_dump_json())
    else:
        console.print(status_table(result))
    return 0


def _since(text: str) -> str:
    try:
        return since_timestamp(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None


def add_parser(
    subparsers: Any, add_target_arguments: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "status", help="one table: records by status and error code, review queue, queues, the endpoint"
    )
    parser.add_argument(
        "--since",
        type=_since,
        help="count records updated at or after this ISO 8601 time (default: 24 h ago)",
    )
    parser.add_argument("--json", action="store_true", help="the same as one JSON object")
    add_target_arguments(parser)
    return parser


def register(subparsers: Any) -> None:
    # The same target options (and local-stack default) as upload, redrive and results.
    from describer import deployment_commands
    from describer.local.stack import LocalSettings

    def run(args: argparse.Namespace) -> int:
        deployment = deployment_commands.deployment_from(args)
        local = LocalSettings.load(args.state_dir.resolve()) if deployment.endpoint_url else None
        console = Console() if sys.stdout.isatty() else Console(width=160)
        return status(args, deployment, console, local.model_host_url if local else None)

    add_parser(subparsers, deployment_commands.add_target_arguments).set_defaults(handler=run)
