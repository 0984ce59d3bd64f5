"""Bounded runs: the workflows' TimeoutSeconds, recomputed from the ASL and the template so it cannot drift.

A Lambda task without a TimeoutSeconds of its own lasts at most its function's Timeout per attempt.
The longest a DescribeProduct run can legitimately take is every work state using every retry its
Retry rules allow, each attempt running for the function's whole Timeout and each wait the longest
its backoff allows (full jitter only shortens it), and then RecordFailure doing the same. The
AskAttributes Map runs its question groups MapConcurrency at a time. Past that bound a run is not
slow but stuck: the execution times out and RecordStopped ends its record EXECUTION_TIMED_OUT.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import yaml

from describer_rules.catalogue import load_catalogue

from .conftest import DESCRIBE_ASL, REPO, load_template, template_parameter_default, template_resource

BACKFILL_ASL = REPO / "statemachine" / "backfill.asl.json"
# Step Functions' own transitions and Lambda's start-up come on top: the bound is rounded up to this.
ROUNDING_S = 300
# A backfill's length grows with the catalogue; its bound is a month (docs/operations.md).
BACKFILL_TIMEOUT_S = 30 * 24 * 3600


def _function_timeout(template: dict[str, Any], resource: str) -> int:
    """The Timeout of the function a task's ``${NameArn}`` placeholder names."""
    [name] = re.fullmatch(r"\$\{(\w+)Arn\}", resource).groups()  # type: ignore[union-attr]
    properties = template["Resources"][name]["Properties"]
    return int(properties.get("Timeout", template["Globals"]["Function"]["Timeout"]))


def _longest_waits(retrier: dict[str, Any]) -> float:
    return sum(
        min(
            retrier["IntervalSeconds"] * retrier["BackoffRate"] ** n, retrier.get("MaxDelaySeconds", math.inf)
        )
        for n in range(retrier["MaxAttempts"])
    )


def worst_case_task_s(state: dict[str, Any], attempt_s: int) -> float:
    """Every retrier exhausted (each counts its own attempts), every attempt as long as it may be."""
    retriers = state.get("Retry", [])
    attempts = 1 + sum(retrier["MaxAttempts"] for retrier in retriers)
    return attempts * attempt_s + sum(_longest_waits(retrier) for retrier in retriers)


def derived_describe_timeout_s() -> int:
    template = load_template()
    states = yaml.safe_load(DESCRIBE_ASL.read_text())["States"]
    questions = max(len(load_catalogue().questions(spec.name)) for spec in load_catalogue().categories)
    groups = math.ceil(questions / template_parameter_default("QuestionsPerCall"))
    rounds = math.ceil(groups / template_parameter_default("MapConcurrency"))
    total = 0.0
    for name, state in states.items():
        if state["Type"] == "Task":
            total += worst_case_task_s(state, _function_timeout(template, state["Resource"]))
        elif state["Type"] == "Map":
            [task] = state["ItemProcessor"]["States"].values()
            total += rounds * worst_case_task_s(task, _function_timeout(template, task["Resource"]))
        else:
            assert state["Type"] in ("Choice", "Pass", "Succeed", "Fail"), (
                name,
                "a state the bound does not cover",
            )
    return math.ceil(total / ROUNDING_S) * ROUNDING_S


def test_describe_product_times_out_at_its_longest_legitimate_run_by_default() -> None:
    definition = yaml.safe_load(DESCRIBE_ASL.read_text())
    substitutions = template_resource("DescribeProductStateMachine")["DefinitionSubstitutions"]
    assert definition["TimeoutSeconds"] == "${RunTimeoutSeconds}"
    assert substitutions["RunTimeoutSeconds"] == {"Ref": "RunTimeoutSeconds"}
    derived = derived_describe_timeout_s()
    assert template_parameter_default("RunTimeoutSeconds") == derived, (
        f"set the RunTimeoutSeconds default to {derived} (docs/pipeline.md)"
    )
    # The figure docs/pipeline.md explains.
    assert derived == 12300


def _states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        if "ItemProcessor" in state:
            yield from _states(state["ItemProcessor"]["States"])


def test_no_task_bounds_itself_below_its_function() -> None:
    """A task TimeoutSeconds would cut an attempt short of the Lambda timeout the bound assumes."""
    for asl in (DESCRIBE_ASL, BACKFILL_ASL):
        states = yaml.safe_load(asl.read_text())["States"]  # YAML reads the JSON one too
        assert [name for name, state in _states(states) if "TimeoutSeconds" in state] == [], asl.name


def test_the_worst_case_counts_every_retrier_and_its_capped_waits() -> None:
    state = {
        "Retry": [
            {"IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2, "MaxDelaySeconds": 5},
            {"IntervalSeconds": 10, "MaxAttempts": 1, "BackoffRate": 2},
        ]
    }
    # 5 attempts of 7 s; waits 2 + 4 + 5 (capped) and 10.
    assert worst_case_task_s(state, 7) == 5 * 7 + 11 + 10
    assert worst_case_task_s({}, 7) == 7


def test_the_backfill_is_bounded_and_outlasts_the_runs_it_waits_for() -> None:
    definition = json.loads(BACKFILL_ASL.read_text())
    assert definition["TimeoutSeconds"] == BACKFILL_TIMEOUT_S
    # Even one item that takes its child run's whole bound leaves the backfill running.
    assert derived_describe_timeout_s() < BACKFILL_TIMEOUT_S
