"""Bedrock batch inference jobs for the copy, and their files in S3.

Layout under the stack's batch prefix (``CopyStore``):

- ``queued/<product id>.json``: a product whose attributes are saved and whose copy waits for a job;
- ``submissions/<id>/submission.json``: the jobs submitted together and the products they carry;
- ``submissions/<id>/<locale>-<n>.jsonl``: a job's input; Bedrock writes its output under
  ``submissions/<id>/out/<job id>/`` (``<input name>.out`` and ``manifest.json.out``).

A queued product stays queued until a submission names it, and a submission stays until every
product in it is saved, failed or queued again: whatever is cut short, a rerun finds it.
There is no Step Functions integration that waits for a job (``.sync``): the backfill polls.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from describer_aws.aws_errors import client_error_code
from describer_rules.batch_output import OUTPUT_SUFFIX, JobStatus

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Bedrock's shortest timeout; a job that has not started by then is Expired and its records fall back.
JOB_TIMEOUT_HOURS = 24


class SubmittedJob(BaseModel):
    locale: str
    job_arn: str
    input_key: str
    records: dict[str, str] = Field(description="record id -> product id")

    @property
    def job_id(self) -> str:
        return self.job_arn.rsplit("/", 1)[-1]


class CopyStore:
    """The batch prefix of the stack's results bucket."""

    def __init__(self, s3_client: S3Client, bucket: str, prefix: str) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix

    def queued_key(self, product_id: str) -> str:
        return f"{self.prefix}queued/{product_id}.json"

    def submission_key(self, submission_id: str) -> str:
        return f"{self.prefix}submissions/{submission_id}/submission.json"

    def input_key(self, submission_id: str, name: str) -> str:
        return f"{self.prefix}submissions/{submission_id}/{name}.jsonl"

    def output_uri(self, submission_id: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}submissions/{submission_id}/out/"

    def put(self, key: str, body: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode(), ContentType="application/json")

    def get(self, key: str) -> str:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            objects: Any = [{"Key": key} for key in keys[start : start + 1000]]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def keys(self, under: str) -> Iterator[str]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=under):
            for entry in page.get("Contents", []):
                yield entry["Key"]

    def queued_keys(self) -> list[str]:
        return sorted(self.keys(f"{self.prefix}queued/"))

    def submission_keys(self) -> list[str]:
        return sorted(
            key for key in self.keys(f"{self.prefix}submissions/") if key.endswith("/submission.json")
        )

    def output_lines(self, submission_id: str, job: SubmittedJob) -> list[str] | None:
        """The job's output lines (Bedrock names the file after the input), or None when there is none."""
        name = job.input_key.rsplit("/", 1)[-1] + OUTPUT_SUFFIX
        under = f"{self.prefix}submissions/{submission_id}/out/{job.job_id}/"
        found = [key for key in self.keys(under) if key.endswith(name)]
        if not found:
            return None
        return self.get(found[0]).splitlines()


class BatchJobs:
    """CreateModelInvocationJob and GetModelInvocationJob (Bedrock's control plane)."""

    def __init__(self, bedrock_client: Any, role_arn: str) -> None:
        self.client = bedrock_client
        self.role_arn = role_arn

    def create(self, name: str, model_id: str, input_uri: str, output_uri: str) -> str:
        """Start a Converse-shaped job; the name is its idempotency token (a retried call starts one)."""
        response = self.client.create_model_invocation_job(
            jobName=name,
            roleArn=self.role_arn,
            clientRequestToken=name,
            modelId=model_id,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri, "s3InputFormat": "JSONL"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": output_uri}},
            timeoutDurationInHours=JOB_TIMEOUT_HOURS,
            modelInvocationType="Converse",
        )
        return str(response["jobArn"])

    def status(self, job_arn: str) -> tuple[JobStatus, str]:
        """The job's status and message; a job Bedrock no longer knows counts as Failed (nothing to read)."""
        try:
            job = self.client.get_model_invocation_job(jobIdentifier=job_arn)
        except ClientError as error:
            if client_error_code(error) in ("ResourceNotFoundException", "ValidationException"):
                return JobStatus.FAILED, f"Bedrock does not know the job ({client_error_code(error)})"
            raise
        return JobStatus(job["status"]), str(job.get("message", ""))
