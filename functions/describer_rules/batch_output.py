"""Bedrock batch inference for the copy: the input lines, the job states, and reading the output back.

A batch job reads one JSONL file of ``{"recordId", "modelInput"}`` lines and writes, per input file,
``<input name>.out`` with ``{"recordId", "modelInput", "modelOutput" | "error"}`` lines (in any order)
and ``manifest.json.out`` with its record and token counts. A job's records are one locale's copy
requests; their ids are short and ours (``record_id``), so an id the job did not get is spotted.

Reading the output never trusts it: a line that is not JSON, is cut short, names a record the job
did not have, repeats one, or carries an error instead of an output is counted by reason, and the
record it concerns (if any) gets no output, so the caller writes that copy on demand instead. A job
that ended without outputs (Failed, Stopped, Expired) leaves every record to that fallback.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# AWS's limits (Bedrock quotas, "Batch inference"; unverified for every model): below the minimum a
# job is refused, so a smaller batch is written on demand; above the maximum it is split.
MIN_RECORDS_PER_JOB = 100
MAX_RECORDS_PER_JOB = 50_000
MAX_INPUT_FILE_BYTES = 1_000_000_000
OUTPUT_SUFFIX = ".out"
MANIFEST_NAME = "manifest.json.out"


class JobStatus(StrEnum):
    SUBMITTED = "Submitted"
    VALIDATING = "Validating"
    SCHEDULED = "Scheduled"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    PARTIALLY_COMPLETED = "PartiallyCompleted"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    EXPIRED = "Expired"  # never started before its timeout

    @property
    def ended(self) -> bool:
        return self in _ENDED

    @property
    def has_output(self) -> bool:
        """Ended with an output file worth reading (a partial one holds some records' outputs)."""
        return self in (JobStatus.COMPLETED, JobStatus.PARTIALLY_COMPLETED)


_ENDED = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.PARTIALLY_COMPLETED,
        JobStatus.FAILED,
        JobStatus.STOPPED,
        JobStatus.EXPIRED,
    }
)


class Fallback(StrEnum):
    """Why a record's copy was written on demand instead of taken from the batch job."""

    JOB_ENDED_WITHOUT_OUTPUT = "job_ended_without_output"  # Failed, Stopped or Expired
    MISSING = "missing"  # the job's output has no line for it
    MODEL_ERROR = "model_error"  # its line carries an error
    INVALID = "invalid"  # its output breaks the content rules or is no copy at all
    BELOW_JOB_MINIMUM = "below_job_minimum"  # too few records for a job: not worth a day's wait


class BadLine(StrEnum):
    """An output line that concerns no record we can tell, counted and skipped."""

    NOT_JSON = "not_json"
    CUT_SHORT = "cut_short"  # starts as a JSON object but ends before it does
    UNKNOWN_RECORD = "unknown_record"
    DUPLICATE_RECORD = "duplicate_record"
    NO_RECORD_ID = "no_record_id"


def record_id(index: int) -> str:
    """The job's id of its ``index``-th record: 11 characters, as AWS's examples (``CALL0000001``)."""
    return f"REC{index:08d}"


def input_line(rid: str, model_input: Mapping[str, Any]) -> str:
    return json.dumps({"recordId": rid, "modelInput": model_input}, separators=(",", ":"), ensure_ascii=False)


def chunks(records: list[str], line_bytes: Mapping[str, int]) -> list[list[str]]:
    """``records`` split into jobs within the record and size limits (order kept)."""
    jobs: list[list[str]] = [[]]
    size = 0
    for rid in records:
        if len(jobs[-1]) >= MAX_RECORDS_PER_JOB or size + line_bytes[rid] > MAX_INPUT_FILE_BYTES:
            jobs.append([])
            size = 0
        jobs[-1].append(rid)
        size += line_bytes[rid]
    return [job for job in jobs if job]


@dataclass
class JobOutput:
    """What a job's output file says, per record id, and the lines it could not use."""

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # record id -> modelOutput
    errors: dict[str, str] = field(default_factory=dict)  # record id -> the error it carries
    bad_lines: Counter[BadLine] = field(default_factory=Counter)


def read_output(lines: Iterable[str], expected: Iterable[str]) -> JobOutput:
    """Join a job's output lines to the record ids it was given (``expected``)."""
    known = set(expected)
    result = JobOutput()
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            result.bad_lines[BadLine.CUT_SHORT if line.startswith("{") else BadLine.NOT_JSON] += 1
            continue
        if not isinstance(entry, dict):
            result.bad_lines[BadLine.NOT_JSON] += 1
            continue
        rid = entry.get("recordId")
        if not isinstance(rid, str):
            result.bad_lines[BadLine.NO_RECORD_ID] += 1
        elif rid not in known:
            result.bad_lines[BadLine.UNKNOWN_RECORD] += 1
        elif rid in result.outputs or rid in result.errors:
            result.bad_lines[BadLine.DUPLICATE_RECORD] += 1
        elif isinstance(entry.get("modelOutput"), dict):
            result.outputs[rid] = entry["modelOutput"]
        else:
            result.errors[rid] = json.dumps(entry.get("error", "no modelOutput"))[:500]
    return result


def fallbacks_of(status: JobStatus, output: JobOutput | None, expected: Iterable[str]) -> dict[str, Fallback]:
    """The records of an ended job that have no usable line, and why (the content check comes after)."""
    if not status.ended:
        raise ValueError(f"the job is still {status.value}")
    if not status.has_output or output is None:
        return dict.fromkeys(expected, Fallback.JOB_ENDED_WITHOUT_OUTPUT)
    reasons: dict[str, Fallback] = {}
    for rid in expected:
        if rid in output.errors:
            reasons[rid] = Fallback.MODEL_ERROR
        elif rid not in output.outputs:
            reasons[rid] = Fallback.MISSING
    return reasons
