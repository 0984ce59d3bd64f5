"""Reading a Bedrock batch job's output back: every bad line counted, every record without a usable
line left to the on-demand fallback, and a job that ended without output leaving all of them to it."""

from __future__ import annotations

import json

import pytest

from describer_rules.batch_output import (
    MAX_RECORDS_PER_JOB,
    BadLine,
    Fallback,
    JobStatus,
    chunks,
    fallbacks_of,
    input_line,
    read_output,
    record_id,
)

OUTPUT = {"output": {"message": {"content": [{"text": "{}"}]}}, "stopReason": "end_turn"}


def _line(rid: str, **entry: object) -> str:
    return json.dumps({"recordId": rid, "modelInput": {}, **entry})


def test_record_ids_are_short_unique_and_the_input_line_is_one_json_object() -> None:
    ids = [record_id(index) for index in range(3)]
    assert ids == ["REC00000000", "REC00000001", "REC00000002"] and all(len(i) == 11 for i in ids)
    line = input_line(ids[0], {"messages": [{"role": "user", "content": [{"text": "Größe"}]}]})
    assert "\n" not in line and json.loads(line)["modelInput"]["messages"][0]["content"][0]["text"] == "Größe"


def test_bad_lines_are_counted_by_reason_and_their_records_fall_back() -> None:
    expected = [record_id(index) for index in range(6)]
    lines = [
        _line(expected[0], modelOutput=OUTPUT),
        "not json at all",
        _line(expected[1], modelOutput=OUTPUT)[:40],  # cut short: its record has no output
        _line("REC99999999", modelOutput=OUTPUT),  # a record the job was never given
        _line(expected[2], error={"errorCode": 400, "errorMessage": "refused"}),
        _line(expected[0], modelOutput=OUTPUT),  # the same record twice: the first one counts
        json.dumps({"modelOutput": OUTPUT}),
        "",
        _line(expected[3], modelOutput=OUTPUT),
        "[1, 2]",
    ]
    output = read_output(lines, expected)
    assert set(output.outputs) == {expected[0], expected[3]}
    assert output.bad_lines == {
        BadLine.NOT_JSON: 2,
        BadLine.CUT_SHORT: 1,
        BadLine.UNKNOWN_RECORD: 1,
        BadLine.DUPLICATE_RECORD: 1,
        BadLine.NO_RECORD_ID: 1,
    }
    assert fallbacks_of(JobStatus.PARTIALLY_COMPLETED, output, expected) == {
        expected[1]: Fallback.MISSING,
        expected[2]: Fallback.MODEL_ERROR,
        expected[4]: Fallback.MISSING,
        expected[5]: Fallback.MISSING,
    }


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.STOPPED, JobStatus.EXPIRED])
def test_a_job_that_ended_without_output_leaves_every_record_to_the_fallback(status: JobStatus) -> None:
    expected = [record_id(0), record_id(1)]
    output = read_output([_line(expected[0], modelOutput=OUTPUT)], expected)
    assert fallbacks_of(status, output, expected) == dict.fromkeys(
        expected, Fallback.JOB_ENDED_WITHOUT_OUTPUT
    )
    assert fallbacks_of(status, None, expected) == dict.fromkeys(expected, Fallback.JOB_ENDED_WITHOUT_OUTPUT)


@pytest.mark.parametrize(
    "status",
    [
        JobStatus.SUBMITTED,
        JobStatus.VALIDATING,
        JobStatus.SCHEDULED,
        JobStatus.IN_PROGRESS,
        JobStatus.STOPPING,
    ],
)
def test_a_job_still_running_is_not_read(status: JobStatus) -> None:
    assert not status.ended
    with pytest.raises(ValueError, match="still"):
        fallbacks_of(status, None, [record_id(0)])


def test_jobs_are_split_within_the_record_limit_in_order() -> None:
    records = [record_id(index) for index in range(MAX_RECORDS_PER_JOB + 5)]
    jobs = chunks(records, dict.fromkeys(records, 100))
    assert [len(job) for job in jobs] == [MAX_RECORDS_PER_JOB, 5]
    assert [rid for job in jobs for rid in job] == records
