"""Copy by batch inference: queued with the record at COPY_QUEUED, one job per locale, joined back by
record id, checked by the content rules, and every record without a usable reply written on demand
and counted; a job that expired leaves all its records to that fallback; nothing is lost or written
twice, and a rerun resumes. S3, DynamoDB and EventBridge in moto; Bedrock's control plane faked."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from describer_aws.batch_jobs import BatchJobs, CopyStore
from describer_aws.product_events import ProductEvents
from describer_aws.results_table import ResultsTable
from describer_rules.batch_output import JobStatus
from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import PurchaseMode, RecordStage, S3ObjectRef, Status
from describer_steps.batch_copy import BatchCopier, QueuedCopy, queue_copy
from describer_steps.settings import DescriptionSettings
from describer_steps.states import MergedAttributes, ProductIdentity

from .conftest import BUCKET, EVENT_BUS, TABLE, Aws
from .test_description import ATTRIBUTES, GOOD, _response

PREFIX = "batch-copy/"
SETTINGS = DescriptionSettings(bedrock_model_id="anthropic.claude-haiku-4-5", locales=["en-US", "de-DE"])
ROLE = "arn:aws:iam::123456789012:role/batch-copy"


class FakeJobs:
    """Bedrock's CreateModelInvocationJob / GetModelInvocationJob: jobs stay Submitted until told."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.status: dict[str, str] = {}

    def create_model_invocation_job(self, **request: Any) -> dict[str, Any]:
        arn = f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/job{len(self.created)}"
        self.created.append(request | {"jobArn": arn})
        self.status[arn] = "Submitted"
        return {"jobArn": arn}

    def get_model_invocation_job(self, jobIdentifier: str) -> dict[str, Any]:
        return {"status": self.status[jobIdentifier]}

    def job(self, locale: str) -> dict[str, Any]:
        [job] = [job for job in self.created if f"-{locale}-" in job["jobName"]]
        return job

    def end(self, s3: Any, locale: str, status: str, lines: list[str] | None = None) -> None:
        """End the locale's job; with ``lines``, write its output where Bedrock does."""
        job = self.job(locale)
        self.status[job["jobArn"]] = status
        if lines is not None:
            input_uri = job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
            output_uri = job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
            key = output_uri.split("/", 3)[3] + job["jobArn"].rsplit("/", 1)[1] + "/"
            s3.put_object(
                Bucket=BUCKET, Key=key + input_uri.rsplit("/", 1)[1] + ".out", Body="\n".join(lines)
            )
            s3.put_object(Bucket=BUCKET, Key=key + "manifest.json.out", Body="{}")


class FakeBedrock:
    """Converse on demand for the fallbacks: good copy, or throttled."""

    def __init__(self, throttled: bool = False) -> None:
        self.calls: list[str] = []
        self.throttled = throttled

    def converse(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request["messages"][0]["content"][0]["text"])
        if self.throttled:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Converse")
        return _response(GOOD, tokens=(500, 200))


def _queued(index: int) -> QueuedCopy:
    product_id = f"p{index}"
    key = f"catalogue/Shirts/{product_id}.jpg"
    return QueuedCopy(
        execution_name=f"{product_id}-run",
        execution_start="2026-12-07T10:00:00.000Z",
        product=ProductIdentity(
            product_id=product_id,
            category="Shirts",
            source=S3ObjectRef(bucket=BUCKET, key=key, version_id="v1"),
            order_token=f"2026-12-07T10:00:00.000000Z#{index:032d}",
            photos=[S3ObjectRef(bucket=BUCKET, key=key, version_id="v1")],
        ),
        prepare_ms=100,
        merged=MergedAttributes(
            attributes=ATTRIBUTES,
            unknown_attributes=[],
            confidence=dict.fromkeys(ATTRIBUTES, 0.9),
            endpoint="product-describer",
            endpoint_ms=800,
            endpoint_calls=2,
        ),
    )


def _copier(aws: Aws, jobs: FakeJobs, bedrock: FakeBedrock, min_records: int = 2) -> BatchCopier:
    return BatchCopier(
        CopyStore(aws.s3, BUCKET, PREFIX),
        BatchJobs(jobs, ROLE),
        ResultsTable(TABLE, aws.dynamodb),
        ProductEvents(EVENT_BUS, aws.events),
        load_catalogue(),
        SETTINGS,
        bedrock,
        clock=lambda: 1_796_637_600.0,
        min_records=min_records,
    )


def _queue(aws: Aws, count: int) -> list[QueuedCopy]:
    table = ResultsTable(TABLE, aws.dynamodb)
    store = CopyStore(aws.s3, BUCKET, PREFIX)
    products = [_queued(index) for index in range(count)]
    for queued in products:
        assert table.write_if_current(queued.product.record(Status.PROCESSING, queued.execution_name))
        assert queue_copy(queued, table, store).queued
    return products


def _reply_line(rid: str, content: dict[str, Any] | str, tokens: tuple[int, int] = (400, 150)) -> str:
    return json.dumps({"recordId": rid, "modelInput": {}, "modelOutput": _response(content, tokens=tokens)})


def _input_ids(aws: Aws, jobs: FakeJobs, locale: str) -> dict[str, dict[str, Any]]:
    """record id -> its input line."""
    uri = jobs.job(locale)["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
    body = aws.s3.get_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])["Body"].read().decode()
    lines = [json.loads(line) for line in body.splitlines()]
    return {line["recordId"]: line for line in lines}


def test_a_queued_product_waits_at_copy_queued_with_its_attributes(aws: Aws) -> None:
    [queued] = _queue(aws, 1)
    record = ResultsTable(TABLE, aws.dynamodb).get("p0")
    assert record is not None
    assert (record.status, record.stage, record.attributes) == (
        Status.PROCESSING,
        RecordStage.COPY_QUEUED,
        ATTRIBUTES,
    )
    stored = aws.s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}queued/p0.json")["Body"].read()
    assert QueuedCopy.model_validate_json(stored) == queued


def test_a_superseded_run_queues_nothing(aws: Aws) -> None:
    table = ResultsTable(TABLE, aws.dynamodb)
    newer = _queued(0)
    newer.product.order_token = "2027-01-01T00:00:00.000000Z#0"
    assert table.write_if_current(newer.product.record(Status.PROCESSING, "newer-run"))
    output = queue_copy(_queued(0), table, CopyStore(aws.s3, BUCKET, PREFIX))
    assert not output.queued
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}queued/")


def test_one_job_per_locale_joined_back_checked_and_every_unusable_reply_written_on_demand(aws: Aws) -> None:
    _queue(aws, 3)
    jobs, bedrock = FakeJobs(), FakeBedrock()
    copier = _copier(aws, jobs, bedrock)
    submitted = copier.submit()
    assert (submitted.queued, submitted.submitted_jobs) == (3, 2)
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}queued/")
    english = jobs.job("en-US")
    assert (english["modelInvocationType"], english["roleArn"], english["modelId"]) == (
        "Converse",
        ROLE,
        SETTINGS.bedrock_model_id,
    )
    lines = _input_ids(aws, jobs, "en-US")
    assert len(lines) == 3
    first = next(iter(lines.values()))["modelInput"]
    assert (
        "modelId" not in first
        and "outputConfig" in first
        and "en-US" in first["messages"][0]["content"][0]["text"]
    )

    # Still running: nothing is read, nothing written.
    assert copier.collect().open_jobs == 2
    assert ResultsTable(TABLE, aws.dynamodb).get("p0").stage == RecordStage.COPY_QUEUED  # type: ignore[union-attr]

    ids = sorted(lines)  # p0, p1, p2 in order
    broken = GOOD | {"keywords": ["shirt"]}  # too few keywords: breaks a content rule
    jobs.end(
        aws.s3,
        "en-US",
        "PartiallyCompleted",
        [
            _reply_line(ids[0], GOOD),
            "this is not json",
            _reply_line(ids[1], GOOD)[:60],  # cut short: p1 has no en-US reply
            _reply_line("REC99999999", GOOD),  # a record the job never had
            _reply_line(ids[2], broken),
        ],
    )
    assert copier.collect().open_jobs == 1  # de-DE has not ended: the submission waits for it
    jobs.end(aws.s3, "de-DE", "Expired")  # never started: every de-DE copy falls back
    report = copier.collect()
    assert (report.saved, report.failed, report.requeued, report.open_jobs) == (3, 0, 0, 0)
    assert report.batch_copies == 1
    assert report.fallbacks == {"missing": 1, "invalid": 1, "job_ended_without_output": 3}
    assert report.bad_lines == {"not_json": 1, "cut_short": 1, "unknown_record": 1}
    assert len(bedrock.calls) == 5
    # p2's broken batch reply was its first attempt: the one on-demand call is the retry naming the rule.
    assert sum("keywords" in call and "en-US" in call for call in bedrock.calls) == 1
    table = ResultsTable(TABLE, aws.dynamodb)
    first_record = table.get("p0")
    assert first_record is not None and first_record.status == Status.COMPLETED and first_record.stage is None
    assert set(first_record.content) == {"en-US", "de-DE"}
    ledger = first_record.cost
    assert ledger is not None
    assert ledger.bedrock[PurchaseMode.BATCH].input == 400
    assert ledger.bedrock[PurchaseMode.ON_DEMAND].input == 500
    assert (ledger.bedrock_fallbacks, ledger.state_transitions, ledger.express_executions) == (1, 0, 1)
    assert ledger.endpoint_seconds == 0.8
    # p2's broken batch reply is paid for, in batch tokens, and its copy comes from the fallback.
    third = table.get("p2")
    assert third is not None and third.cost is not None and third.cost.bedrock_fallbacks == 2
    assert third.cost.bedrock[PurchaseMode.BATCH].output == 150

    # A rerun finds nothing to submit and nothing to collect: no record is written twice.
    before = {pid: table.get(pid).updated_at for pid in ("p0", "p1", "p2")}  # type: ignore[union-attr]
    assert copier.submit().queued == 0
    assert copier.collect().saved == 0
    assert {pid: table.get(pid).updated_at for pid in before} == before  # type: ignore[union-attr]


@pytest.mark.parametrize("status", ["Failed", "Stopped", "Expired"])
def test_a_job_that_ended_without_output_leaves_no_record_stuck(aws: Aws, status: str) -> None:
    _queue(aws, 2)
    jobs, bedrock = FakeJobs(), FakeBedrock()
    copier = _copier(aws, jobs, bedrock)
    copier.submit()
    for locale in SETTINGS.locales:
        jobs.end(aws.s3, locale, status)
    report = copier.collect()
    assert report.saved == 2 and report.fallbacks == {"job_ended_without_output": 4}
    assert all(ResultsTable(TABLE, aws.dynamodb).get(f"p{i}").status == Status.COMPLETED for i in range(2))  # type: ignore[union-attr]


def test_a_fallback_bedrock_cannot_write_now_is_queued_again_and_a_rerun_writes_it(aws: Aws) -> None:
    _queue(aws, 2)
    jobs = FakeJobs()
    copier = _copier(aws, jobs, FakeBedrock(throttled=True))
    copier.submit()
    for locale in SETTINGS.locales:
        jobs.end(aws.s3, locale, "Stopped")
    report = copier.collect()
    assert (report.saved, report.requeued) == (0, 2)
    table = ResultsTable(TABLE, aws.dynamodb)
    assert table.get("p0").stage == RecordStage.COPY_QUEUED  # type: ignore[union-attr]
    # The rerun: fewer than a job's minimum are written on demand at once.
    rerun = _copier(aws, FakeJobs(), FakeBedrock(), min_records=100).submit()
    assert (rerun.queued, rerun.saved, rerun.submitted_jobs) == (2, 2, 0)
    assert rerun.fallbacks == {"below_job_minimum": 4}
    record = table.get("p1")
    assert record is not None and record.status == Status.COMPLETED
    assert record.cost is not None and list(record.cost.bedrock) == [PurchaseMode.ON_DEMAND]


def test_a_product_a_newer_upload_took_over_is_left_alone(aws: Aws) -> None:
    _queue(aws, 2)
    jobs, bedrock = FakeJobs(), FakeBedrock()
    copier = _copier(aws, jobs, bedrock)
    copier.submit()
    table = ResultsTable(TABLE, aws.dynamodb)
    newer = _queued(0)
    newer.product.order_token = "2027-01-01T00:00:00.000000Z#0"
    assert table.write_if_current(newer.product.record(Status.PROCESSING, "newer-run"))
    for locale in SETTINGS.locales:
        jobs.end(aws.s3, locale, "Expired")
    report = copier.collect()
    assert (report.saved, report.not_current) == (1, 1)
    assert table.get("p0").execution_name == "newer-run"  # type: ignore[union-attr]


def test_the_create_request_is_bedrocks_own_shape() -> None:
    client = boto3.client("bedrock", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response(
            "create_model_invocation_job",
            {"jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc"},
            {
                "jobName": "copy-1-en-US-0",
                "roleArn": ROLE,
                "clientRequestToken": "copy-1-en-US-0",
                "modelId": "anthropic.claude-haiku-4-5",
                "inputDataConfig": {
                    "s3InputDataConfig": {"s3Uri": "s3://b/in.jsonl", "s3InputFormat": "JSONL"}
                },
                "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://b/out/"}},
                "timeoutDurationInHours": 24,
                "modelInvocationType": "Converse",
            },
        )
        stubber.add_client_error("get_model_invocation_job", "ResourceNotFoundException")
        jobs = BatchJobs(client, ROLE)
        assert jobs.create(
            "copy-1-en-US-0", "anthropic.claude-haiku-4-5", "s3://b/in.jsonl", "s3://b/out/"
        ).endswith("/abc")
        assert jobs.status("arn:x")[0] == JobStatus.FAILED


def test_a_collect_pass_cut_short_by_time_leaves_the_rest_for_the_next(aws: Aws) -> None:
    _queue(aws, 3)
    jobs, bedrock = FakeJobs(), FakeBedrock()
    copier = _copier(aws, jobs, bedrock)
    copier.submit()
    for locale in SETTINGS.locales:
        jobs.end(aws.s3, locale, "Expired")
    budget = iter([False, True])  # time for one product, then stop
    copier.should_stop = lambda: next(budget, True)
    first = copier.collect()
    assert (first.saved, first.open_jobs) == (1, 1)
    copier.should_stop = lambda: False
    second = copier.collect()
    assert (second.saved, second.open_jobs, second.not_current) == (2, 0, 0)
    assert copier.collect().saved == 0
