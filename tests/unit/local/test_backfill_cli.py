"""`describer backfill`'s reading of a finished backfill: item outcomes from the map's output (the local
emulator) or from the ResultWriter's files in S3 (AWS, in moto), and its checks before starting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from benchmarks.backfill import duplicate_runs
from describer import backfill_runs
from describer.deployment import Deployment

BUCKET = "uploads"
DESCRIBED = {
    "start": True,
    "plan": "DESCRIBE",
    "product_id": "1",
    "execution_name": "1-a",
    "run": {"status": "SUCCEEDED"},
}
SKIPPED = {"start": False, "plan": "DONE", "product_id": "2", "execution_name": "2-b"}
REJECTED = {
    "start": True,
    "plan": "DESCRIBE",
    "product_id": "3",
    "execution_name": "3-c",
    "error": {"Error": "States.TaskFailed"},
}
TAKEN = {
    "start": True,
    "plan": "DESCRIBE",
    "product_id": "4",
    "execution_name": "4-d",
    "error": {"Error": "StepFunctions.ExecutionAlreadyExistsException"},
}


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=BUCKET)
        stack = Deployment("describer", session)
        stack.__dict__["outputs"] = {"UploadBucketName": BUCKET, "BackfillPrefix": "catalogue/"}
        yield stack


def _outcomes(results: list[backfill_runs.ItemResult]) -> list[backfill_runs.ItemOutcome]:
    return [result.outcome for result in results]


def test_outcomes_from_the_maps_output(deployment: Deployment) -> None:
    execution = {"output": json.dumps([DESCRIBED, SKIPPED, REJECTED, TAKEN])}
    results = backfill_runs.item_results(deployment, execution)
    assert _outcomes(results) == [
        backfill_runs.ItemOutcome.DESCRIBED,
        backfill_runs.ItemOutcome.SKIPPED,
        backfill_runs.ItemOutcome.FAILED,
        backfill_runs.ItemOutcome.STARTED_ELSEWHERE,
    ]
    assert [result.started for result in results] == [True, False, True, False]


def test_outcomes_from_the_result_writers_files(deployment: Deployment) -> None:
    s3 = deployment.client("s3")

    def child(output: dict[str, Any] | None, status: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"ExecutionArn": "arn:child", "Status": status, "Input": "{}"}
        if output is not None:
            entry["Output"] = json.dumps(output)
        return entry

    prefix = "backfill/results/run-1"
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{prefix}/SUCCEEDED_0.json",
        Body=json.dumps([child(DESCRIBED, "SUCCEEDED"), child(SKIPPED, "SUCCEEDED")]),
    )
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/FAILED_0.json", Body=json.dumps([child(None, "FAILED")]))
    manifest = {
        "DestinationBucket": BUCKET,
        "MapRunArn": "arn:maprun",
        "ResultFiles": {
            "FAILED": [{"Key": f"{prefix}/FAILED_0.json", "Size": 1}],
            "PENDING": [],
            "SUCCEEDED": [{"Key": f"{prefix}/SUCCEEDED_0.json", "Size": 1}],
        },
    }
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/manifest.json", Body=json.dumps(manifest))
    output = {
        "MapRunArn": "arn:maprun",
        "ResultWriterDetails": {"Bucket": BUCKET, "Key": f"{prefix}/manifest.json"},
    }

    results = backfill_runs.item_results(deployment, {"output": json.dumps(output)})
    assert sorted(_outcomes(results)) == sorted(
        [
            backfill_runs.ItemOutcome.DESCRIBED,
            backfill_runs.ItemOutcome.SKIPPED,
            backfill_runs.ItemOutcome.ITEM_FAILED,
        ]
    )


@pytest.mark.parametrize(
    ("source", "manifest", "complaint"),
    [
        ("s3://elsewhere/catalogue/", None, "does not exist"),
        ("s3://uploads/incoming/", None, "outside the stack's backfill prefix"),
        ("s3://uploads/catalogue/", "s3://uploads/backfill/missing.csv", "does not exist"),
        ("s3://uploads/catalogue/", "s3://uploads/catalogue/list.csv", "a manifest lives in"),
        ("uploads/catalogue/", None, "not an S3 URI"),
    ],
)
def test_nothing_starts_on_a_request_that_cannot_work(
    deployment: Deployment, source: str, manifest: str | None, complaint: str
) -> None:
    with pytest.raises(backfill_runs.BackfillError, match=complaint):
        backfill_runs.backfill_input(
            deployment,
            backfill_runs.S3Uri.parse(source),
            backfill_runs.S3Uri.parse(manifest) if manifest else None,
        )


def test_a_good_request_names_what_the_state_machine_reads(deployment: Deployment) -> None:
    deployment.client("s3").put_object(Bucket=BUCKET, Key="backfill/todo.csv", Body=b"Key\ncatalogue/1.jpg\n")
    request = backfill_runs.backfill_input(
        deployment,
        backfill_runs.S3Uri.parse("s3://uploads/catalogue/Shirts/"),
        backfill_runs.S3Uri.parse("s3://uploads/backfill/todo.csv"),
        "Shirts",
    )
    assert request == {
        "bucket": BUCKET,
        "prefix": "catalogue/Shirts/",
        "category": "Shirts",
        "manifest_bucket": BUCKET,
        "manifest_key": "backfill/todo.csv",
    }


def test_duplicates_are_runs_of_one_version_beyond_its_first() -> None:
    def run(key: str, version: str, redrive_count: int = 0) -> dict[str, str]:
        workflow = {"bucket": BUCKET, "key": key, "version_id": version, "redrive_count": redrive_count}
        return {"input": json.dumps(workflow)}

    executions = [
        run("catalogue/1.jpg", "v1"),
        run("catalogue/1.jpg", "v1"),  # the same version again: a duplicate
        run("catalogue/1.jpg", "v1", redrive_count=1),  # a redrive after a failure is not
        run("catalogue/1.jpg", "v2"),  # nor is a newer version
        run("incoming/1.jpg", "v1"),  # nor an upload outside the backfill's prefix
        run("incoming/1.jpg", "v1"),
    ]
    assert duplicate_runs(executions, "catalogue/") == 1


def test_a_batch_copy_backfill_reads_its_children_and_its_copy_passes(deployment: Deployment) -> None:
    from rich.console import Console

    from describer.cli import build_parser

    args = build_parser().parse_args(["backfill", "s3://uploads/catalogue/", "--copy", "batch"])
    assert args.copy == "batch"
    request = backfill_runs.backfill_input(
        deployment, backfill_runs.S3Uri.parse("s3://uploads/catalogue/"), batch_copy=True
    )
    assert request["copy"] == "batch"
    prepared = {"claimed": True}
    queued = {**DESCRIBED, "prepared": prepared, "queued": {"product_id": "1", "queued": True}}
    failed = {**DESCRIBED, "prepared": prepared, "error": {"Error": "EndpointUnavailable", "Cause": "x"}}
    superseded = {**DESCRIBED, "prepared": {"claimed": False}}
    output = {
        "map_run": [queued, failed, superseded, SKIPPED],
        "submitted": {"queued": 1, "submitted_jobs": 2, "saved": 0, "fallbacks": {}},
        "collected": {
            "batch_copies": 1,
            "saved": 1,
            "fallbacks": {"job_ended_without_output": 1},
            "bad_lines": {"cut_short": 2},
        },
    }
    execution = {"output": json.dumps(output)}
    results = backfill_runs.item_results(deployment, execution)
    assert _outcomes(results) == [
        backfill_runs.ItemOutcome.COPY_QUEUED,
        backfill_runs.ItemOutcome.FAILED,
        backfill_runs.ItemOutcome.STARTED_ELSEWHERE,
        backfill_runs.ItemOutcome.SKIPPED,
    ]
    report = backfill_runs.copy_report(execution)
    assert report is not None
    console = Console(width=120, record=True)
    console.print(backfill_runs.copy_table(report))
    text = console.export_text()
    assert "on-demand fallback: job_ended_without_output" in text and "bad output line: cut_short" in text
    assert backfill_runs.copy_report({"output": json.dumps([SKIPPED])}) is None
