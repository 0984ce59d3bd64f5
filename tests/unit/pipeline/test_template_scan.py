"""Template rules: every checkov skip says why; every function and workflow logs to a group with retention."""

from __future__ import annotations

import re

from cfnlint.decode import decode

from .conftest import TEMPLATE


def test_every_checkov_skip_has_a_reason() -> None:
    template, matches = decode(str(TEMPLATE))
    assert template is not None, matches
    skips = [
        (name, skip)
        for name, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), name
        assert len(skip.get("comment", "").split()) >= 5, (name, skip["id"])


def test_every_function_and_state_machine_logs_to_a_group_kept_log_retention_days() -> None:
    template, matches = decode(str(TEMPLATE))
    assert template is not None, matches
    resources = template["Resources"]
    groups = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert all(group["RetentionInDays"] == {"Ref": "LogRetentionDays"} for group in groups.values())
    function_groups = {
        match
        for group in groups.values()
        for match in re.findall(r"^/aws/lambda/\$\{(\w+)\}$", str(group["LogGroupName"].get("Fn::Sub", "")))
    }
    functions = {name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    assert functions == function_groups
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::StateMachine":
            [destination] = resource["Properties"]["Logging"]["Destinations"]
            assert destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0] in groups, name
