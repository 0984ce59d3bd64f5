"""What operators see on the local stack: the deployed dashboard and alarms, and `describer status`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from describer.cli import main
from describer.deployment import Deployment, UploadRef, wait_for_final_records
from describer.local.samples import bad_files
from describer.local.stack import LocalSettings
from describer_aws.results_table import utc_now
from describer_rules.contracts import ErrorCode

pytestmark = pytest.mark.integration


def test_the_dashboard_and_the_alarms_are_deployed(deployment: Deployment) -> None:
    assert deployment.outputs["DashboardUrl"].endswith(f"#dashboards/dashboard/{deployment.stack_name}")
    body = deployment.client("cloudwatch").get_dashboard(DashboardName=deployment.stack_name)["DashboardBody"]
    titles = [widget["properties"]["title"] for widget in json.loads(body)["widgets"]]
    assert "Estimated cost per 1,000 images" in " ".join(titles)
    alarms = deployment.client("cloudwatch").describe_alarms()["MetricAlarms"]
    by_metric = {alarm["MetricName"]: alarm for alarm in alarms}
    assert by_metric["ImageFailurePercent"]["Dimensions"] == [
        {"Name": "service", "Value": deployment.stack_name}
    ]
    assert by_metric["ApproximateAgeOfOldestMessage"]["Threshold"] == 900


def test_status_prints_the_stacks_table(
    tmp_path: Path,
    local_settings: LocalSettings,
    deployment: Deployment,
    capsys: pytest.CaptureFixture[str],
) -> None:
    [gif] = [sample for sample in bad_files(tmp_path) if sample.expected_error == ErrorCode.NOT_AN_IMAGE][:1]
    uploaded_at = utc_now()
    upload = UploadRef.from_response(deployment.upload(gif.path, gif.key), uploaded_at)
    wait_for_final_records(deployment, {gif.product_id: upload}, timeout_s=120)
    capsys.readouterr()
    assert main(["status", "--state-dir", str(local_settings.state_dir), "--since", uploaded_at]) == 0
    table = capsys.readouterr().out
    for row in ("FAILED", "NOT_AN_IMAGE", "review queue", "AdmissionQueue", "local model host"):
        assert row in table, row
    assert (
        main(["status", "--state-dir", str(local_settings.state_dir), "--json", "--since", uploaded_at]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["failed_by_code"] == {"NOT_AN_IMAGE": 1}
    assert report["endpoint"]["status"] == "InService"
