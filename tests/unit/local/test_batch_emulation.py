"""The local model host's Bedrock batch jobs, read by the pipeline's own batch copy: every state on the
way, Bedrock's output layout and manifest, and jobs that fail, expire, complete partially or write bad
lines, each leaving its records to the on-demand fallback and none stuck (S3 and DynamoDB in moto)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode
from moto import mock_aws

from describer.local.model_host.batch_jobs import BatchFaults, BatchJobs
from describer.local.model_host.description_backends import OfflineWriter
from describer.local.model_host.server import converse_answer
from describer.local.model_host.usage import Usage
from describer.local.stack import PROJECT_ROOT
from describer_aws.batch_jobs import BatchJobs as PipelineJobs
from describer_aws.batch_jobs import CopyStore
from describer_aws.product_events import ProductEvents
from describer_aws.results_table import ResultsTable
from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import PurchaseMode, S3ObjectRef, Status
from describer_steps.batch_copy import BatchCopier, QueuedCopy, queue_copy
from describer_steps.settings import DescriptionSettings
from describer_steps.states import MergedAttributes, ProductIdentity

BUCKET, TABLE, BUS, PREFIX = "uploads", "results", "products", "backfill/batch-copy/"
SETTINGS = DescriptionSettings(bedrock_model_id="us.anthropic.claude-haiku-4-5", locales=["en-US", "es-ES"])
ATTRIBUTES = {"Sleeve Length": "Long Sleeves", "Pattern": "Checked", "Colour": "Blue", "Fit": "Slim Fit"}


class _Client:
    """The emulator behind boto3's method names (the HTTP routes are the model host's)."""

    def __init__(self, jobs: BatchJobs) -> None:
        self.jobs = jobs

    def create_model_invocation_job(self, **request: Any) -> dict[str, Any]:
        return self.jobs.create(request)

    def get_model_invocation_job(self, jobIdentifier: str) -> dict[str, Any]:
        job = self.jobs.get(jobIdentifier)
        assert job is not None
        return job


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    template, _ = decode(str(PROJECT_ROOT / "template.yaml"))
    assert template is not None
    table = template["Resources"]["ResultsTable"]["Properties"]
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=table["AttributeDefinitions"],
            KeySchema=table["KeySchema"],
            GlobalSecondaryIndexes=table["GlobalSecondaryIndexes"],
        )
        events = boto3.client("events")
        events.create_event_bus(Name=BUS)
        yield {"s3": s3, "dynamodb": dynamodb, "events": events}


def _queue(aws: dict[str, Any], count: int) -> None:
    table, store = ResultsTable(TABLE, aws["dynamodb"]), CopyStore(aws["s3"], BUCKET, PREFIX)
    for index in range(count):
        key = f"catalogue/Shirts/{index}.jpg"
        product = ProductIdentity(
            product_id=str(index),
            category="Shirts",
            source=S3ObjectRef(bucket=BUCKET, key=key, version_id="v"),
            order_token=f"2026-12-07T10:00:00.000000Z#{index:032d}",
            photos=[S3ObjectRef(bucket=BUCKET, key=key, version_id="v")],
        )
        queued = QueuedCopy(
            execution_name=f"{index}-run",
            execution_start="2026-12-07T10:00:00.000Z",
            product=product,
            merged=MergedAttributes(
                attributes=ATTRIBUTES,
                unknown_attributes=[],
                endpoint="local",
                endpoint_ms=500,
                endpoint_calls=1,
            ),
        )
        assert table.write_if_current(product.record(Status.PROCESSING, queued.execution_name))
        assert queue_copy(queued, table, store).queued


def _copier(aws: dict[str, Any], jobs: BatchJobs, usage: Usage) -> BatchCopier:
    class _Bedrock:  # the on-demand fallback: the host's Converse too
        def converse(self, **request: Any) -> dict[str, Any]:
            status, answer = converse_answer(OfflineWriter(), usage, request["modelId"], request)
            assert status == 200, answer
            return answer

    return BatchCopier(
        CopyStore(aws["s3"], BUCKET, PREFIX),
        PipelineJobs(_Client(jobs), "arn:aws:iam::000000000000:role/local"),
        ResultsTable(TABLE, aws["dynamodb"]),
        ProductEvents(BUS, aws["events"]),
        load_catalogue(),
        SETTINGS,
        _Bedrock(),
        min_records=2,
    )


def _run(aws: dict[str, Any], faults: str, products: int = 6) -> tuple[Any, BatchJobs, Usage]:
    _queue(aws, products)
    usage = Usage()
    jobs = BatchJobs(
        functools.partial(converse_answer, OfflineWriter(), usage), BatchFaults.parse(faults), aws["s3"]
    )
    copier = _copier(aws, jobs, usage)
    assert copier.submit().submitted_jobs == 2
    seen: list[set[str]] = []
    for _ in range(10):
        seen.append({job.status for job in jobs.jobs.values()})
        report = copier.collect()
        if report.open_jobs == 0:
            return report, jobs, usage
    raise AssertionError(f"jobs never ended: {seen}")


def _final(aws: dict[str, Any], products: int = 6) -> list[Any]:
    table = ResultsTable(TABLE, aws["dynamodb"])
    return [table.get(str(index)) for index in range(products)]


def test_a_completed_job_writes_bedrocks_layout_and_every_copy_comes_from_it(aws: dict[str, Any]) -> None:
    report, jobs, _ = _run(aws, "")
    assert {job.status for job in jobs.jobs.values()} == {"Completed"}
    assert (report.saved, report.batch_copies, sum(report.fallbacks.values())) == (6, 12, 0)
    job = next(iter(jobs.jobs.values()))
    listing = aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}submissions/")["Contents"]
    keys = {entry["Key"] for entry in listing}
    out = next(key for key in keys if key.endswith(f"/out/{job.job_id}/manifest.json.out"))
    manifest = json.loads(aws["s3"].get_object(Bucket=BUCKET, Key=out)["Body"].read())
    assert (manifest["totalRecordCount"], manifest["successRecordCount"], manifest["errorRecordCount"]) == (
        6,
        6,
        0,
    )
    records = _final(aws)
    assert all(record.status == Status.COMPLETED and record.stage is None for record in records)
    assert all(list(record.cost.bedrock) == [PurchaseMode.BATCH] for record in records)


@pytest.mark.parametrize(
    ("fault", "ended", "fallbacks"),
    [
        ("batch-fail=1", "Failed", {"job_ended_without_output": 12}),
        ("batch-expire=1", "Expired", {"job_ended_without_output": 12}),
        # Record 1 of each job is never written, records 2 and 5 carry an error line.
        ("batch-partial=1", "PartiallyCompleted", {"missing": 2, "model_error": 4}),
        # The first line is cut short: its record falls back; the others come from the job.
        ("batch-bad-lines=1", "Completed", {"missing": 2}),
    ],
)
def test_a_job_that_goes_wrong_leaves_its_records_to_the_fallback_and_none_stuck(
    aws: dict[str, Any], fault: str, ended: str, fallbacks: dict[str, int]
) -> None:
    report, jobs, _ = _run(aws, fault)
    assert {job.status for job in jobs.jobs.values()} == {ended}
    assert report.fallbacks == fallbacks
    assert report.saved == 6 and report.failed == report.requeued == 0
    if fault.startswith("batch-bad-lines"):
        assert report.bad_lines == {"cut_short": 2, "not_json": 2, "unknown_record": 2}
    records = _final(aws)
    assert all(record.status == Status.COMPLETED for record in records)  # 0 lost, 0 stuck


def test_a_poller_sees_every_state_and_a_stopped_job_ends_without_output(aws: dict[str, Any]) -> None:
    usage = Usage()
    jobs = BatchJobs(functools.partial(converse_answer, OfflineWriter(), usage), s3_client=aws["s3"])
    body = {
        "jobName": "j",
        "clientRequestToken": "j",
        "modelId": "m",
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/in.jsonl"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}},
    }
    arn = jobs.create(body)["jobArn"]
    assert jobs.create(body)["jobArn"] == arn  # the same token: the same job
    states = [jobs.get(arn)["status"] for _ in range(3)]  # type: ignore[index]
    assert states == ["Validating", "Scheduled", "InProgress"]
    assert jobs.stop(arn)
    assert jobs.get(arn)["status"] == "Stopped"  # type: ignore[index]
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="out/")
    assert not jobs.stop("arn:aws:bedrock:us-east-1:000000000000:model-invocation-job/none")
    with pytest.raises(ValueError, match="unknown batch faults"):
        BatchFaults.parse("batch-melt=0.5")
