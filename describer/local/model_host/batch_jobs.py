"""Bedrock batch inference on the local model host: ``CreateModelInvocationJob``, ``Get`` and ``Stop``.

A job reads its JSONL input from S3 (wherever ``AWS_ENDPOINT_URL`` points: the emulator), answers
each ``{"recordId", "modelInput"}`` line with the host's own Converse, and writes what Bedrock
writes: ``<output uri><job id>/<input name>.out`` (``{"recordId", "modelInput", "modelOutput" |
"error"}`` lines) and ``manifest.json.out`` (record and token counts). Its status moves one step per
``GetModelInvocationJob`` (Submitted, Validating, Scheduled, InProgress, then how it ended), so a
poller sees every state, as it would over hours on AWS.

How a job ends is drawn once per job from a seeded generator (``BatchFaults``, the kinds sharing
one draw): ``batch-fail`` (Failed, no output), ``batch-expire`` (Expired: never started),
``batch-partial`` (PartiallyCompleted: every third record an error line, and one record missing),
``batch-bad-lines`` (Completed, but the output also holds a line that is not JSON, one cut short
where a record's line was, and one of an unknown record id). ``StopModelInvocationJob`` stops a job
that has not ended (Stopped, no output).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from pydantic import BaseModel, Field, model_validator

ACCOUNT_ID = "000000000000"
JOB_ARN_PREFIX = f"arn:aws:bedrock:us-east-1:{ACCOUNT_ID}:model-invocation-job/"
BATCH_FAULT_KINDS = ("batch-fail", "batch-expire", "batch-partial", "batch-bad-lines")
_WAITING = ("Submitted", "Validating", "Scheduled")
_ENDED = frozenset({"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"})

# (model id, Converse body) -> (HTTP status, Converse response or error body), as the host answers it.
Converse = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]


class BatchFaults(BaseModel):
    """The share of jobs that end each way other than Completed; the seed of the draw."""

    rates: dict[str, float] = Field(default_factory=dict)
    seed: int = 0

    @model_validator(mode="after")
    def _known_shares(self) -> BatchFaults:
        unknown = set(self.rates) - set(BATCH_FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown batch faults {sorted(unknown)}; known: {', '.join(BATCH_FAULT_KINDS)}")
        if any(not 0 <= rate <= 1 for rate in self.rates.values()) or sum(self.rates.values()) > 1:
            raise ValueError("batch fault rates are shares that add up to at most 1")
        return self

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> BatchFaults:
        """``"batch-expire=0.2,batch-partial=0.3"`` (empty: every job completes)."""
        rates = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            rates[name.strip()] = float(value)
        return cls(rates=rates, seed=seed)


@dataclass
class _Job:
    job_id: str
    name: str
    model_id: str
    input_uri: str
    output_uri: str
    fate: str  # how it will end: Completed or a batch fault kind
    status: str = "Submitted"
    message: str = ""
    submitted_at: float = field(default_factory=time.time)

    @property
    def arn(self) -> str:
        return JOB_ARN_PREFIX + self.job_id

    def description(self) -> dict[str, Any]:
        return {
            "jobArn": self.arn,
            "jobName": self.name,
            "modelId": self.model_id,
            "roleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/local-batch",
            "status": self.status,
            "message": self.message,
            "submitTime": self.submitted_at,
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": self.input_uri, "s3InputFormat": "JSONL"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": self.output_uri}},
            "modelInvocationType": "Converse",
        }


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class BatchJobs:
    """The jobs the host was given, advanced one state per look."""

    def __init__(self, converse: Converse, faults: BatchFaults | None = None, s3_client: Any = None) -> None:
        self.converse = converse
        self.faults = faults or BatchFaults()
        self._random = random.Random(self.faults.seed)
        self._s3 = s3_client
        self._lock = threading.Lock()
        self.jobs: dict[str, _Job] = {}
        self.by_token: dict[str, str] = {}
        self.ended: Counter[str] = Counter()

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = boto3.client("s3")
        return self._s3

    def set_faults(self, faults: BatchFaults) -> None:
        with self._lock:
            self.faults = faults
            self._random = random.Random(faults.seed)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        token = str(body.get("clientRequestToken") or body["jobName"])
        with self._lock:
            if token in self.by_token:  # an idempotent retry: the same job
                return {"jobArn": self.jobs[self.by_token[token]].arn}
            draw, fate = self._random.random(), "Completed"
            for kind in BATCH_FAULT_KINDS:
                rate = self.faults.rates.get(kind, 0.0)
                if draw < rate:
                    fate = kind
                    break
                draw -= rate
            job = _Job(
                job_id=f"local{len(self.jobs):08d}",
                name=str(body["jobName"]),
                model_id=str(body["modelId"]),
                input_uri=body["inputDataConfig"]["s3InputDataConfig"]["s3Uri"],
                output_uri=body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"],
                fate=fate,
            )
            self.jobs[job.job_id] = job
            self.by_token[token] = job.job_id
        return {"jobArn": job.arn}

    def get(self, identifier: str) -> dict[str, Any] | None:
        job = self.jobs.get(identifier.rsplit("/", 1)[-1])
        if job is None:
            return None
        self._advance(job)
        return job.description()

    def stop(self, identifier: str) -> bool:
        job = self.jobs.get(identifier.rsplit("/", 1)[-1])
        if job is None:
            return False
        with self._lock:
            if job.status not in _ENDED:
                self._end(job, "Stopped", "stopped by request")
        return True

    def _end(self, job: _Job, status: str, message: str = "") -> None:
        job.status, job.message = status, message
        self.ended[status] += 1

    def _advance(self, job: _Job) -> None:
        with self._lock:
            if job.status in _ENDED:
                return
            if job.status in _WAITING[:-1]:
                job.status = _WAITING[_WAITING.index(job.status) + 1]
                return
            if job.status == "Scheduled":
                if job.fate == "batch-expire":
                    self._end(job, "Expired", "the job did not start before its timeout")
                else:
                    job.status = "InProgress"
                return
        # InProgress: run it now (outside the lock: the records are answered one by one).
        if job.fate == "batch-fail":
            with self._lock:
                self._end(job, "Failed", "injected failure (batch-fail)")
            return
        counts = self._run(job)
        with self._lock:
            if job.status == "InProgress":  # not stopped meanwhile
                partial = job.fate == "batch-partial" or counts["errors"] > 0
                self._end(job, "PartiallyCompleted" if partial else "Completed")

    def _run(self, job: _Job) -> Counter[str]:
        bucket, key = _split(job.input_uri)
        lines = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
        counts: Counter[str] = Counter()
        written: list[str] = []
        for index, line in enumerate(filter(None, (line.strip() for line in lines))):
            entry = json.loads(line)
            record: dict[str, Any] = {
                "recordId": entry.get("recordId"),
                "modelInput": entry.get("modelInput"),
            }
            counts["total"] += 1
            if job.fate == "batch-partial" and index == 1:
                continue  # a record the output never mentions
            if job.fate == "batch-partial" and index % 3 == 2:
                record["error"] = {"errorCode": 500, "errorMessage": "injected record error (batch-partial)"}
                counts["errors"] += 1
            else:
                status, response = self.converse(job.model_id, dict(entry.get("modelInput") or {}))
                if status == 200:
                    record["modelOutput"] = response
                    counts["success"] += 1
                    counts["input_tokens"] += response.get("usage", {}).get("inputTokens", 0)
                    counts["output_tokens"] += response.get("usage", {}).get("outputTokens", 0)
                else:
                    record["error"] = {"errorCode": status, "errorMessage": json.dumps(response)[:500]}
                    counts["errors"] += 1
            written.append(json.dumps(record))
        if job.fate == "batch-bad-lines" and written:
            written[0] = written[0][: len(written[0]) // 2]  # cut short: that record has no output
            written += ["this line is not JSON", json.dumps({"recordId": "REC99999999", "modelOutput": {}})]
        out_bucket, out_prefix = _split(job.output_uri)
        folder = f"{out_prefix.rstrip('/')}/{job.job_id}/" if out_prefix else f"{job.job_id}/"
        name = key.rsplit("/", 1)[-1]
        self.s3.put_object(Bucket=out_bucket, Key=folder + name + ".out", Body="\n".join(written).encode())
        manifest = {
            "totalRecordCount": counts["total"],
            "processedRecordCount": counts["success"] + counts["errors"],
            "successRecordCount": counts["success"],
            "errorRecordCount": counts["errors"],
            "inputTokenCount": counts["input_tokens"],
            "outputTokenCount": counts["output_tokens"],
        }
        self.s3.put_object(
            Bucket=out_bucket, Key=folder + "manifest.json.out", Body=json.dumps(manifest).encode()
        )
        return counts

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "faults": self.faults.model_dump(mode="json"),
                "jobs": len(self.jobs),
                "ended": dict(self.ended),
            }
