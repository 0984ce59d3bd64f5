"""`describer export`: the feed file, the summary, and its one-line errors."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from describer import export_commands
from describer.cli import main
from describer_rules.contracts import ProductRecord

from .records import record


@dataclass
class FakeDeployment:
    stored: list[ProductRecord]

    def records(self) -> list[ProductRecord]:
        return self.stored


def run(monkeypatch: pytest.MonkeyPatch, stored: list[ProductRecord], *args: str) -> int:
    monkeypatch.setattr(export_commands, "deployment_from", lambda _args: FakeDeployment(stored))
    return main(["export", *args])


def test_writes_the_feed_and_a_summary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "feeds" / "google.tsv"
    stored = [record("tee-1"), record("tee-2", needs_review=True)]
    assert run(monkeypatch, stored, "--format", "google", "--locale", "en-US", "--out", str(out)) == 0

    rows = list(csv.DictReader(out.open(encoding="utf-8", newline=""), delimiter="\t"))
    assert [row["id"] for row in rows] == ["tee-1"]
    printed = capsys.readouterr().out
    assert "rows written" in printed and "skipped: awaiting review" in printed


def test_since_keeps_only_later_records(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = [
        record("old", updated_at="2026-12-01T00:00:00Z"),
        record("new", updated_at="2026-12-07T10:00:00.5Z"),
    ]
    assert (
        run(monkeypatch, stored, "--format", "jsonl", "--locale", "en-US", "--since", "2026-12-07T10:00:00Z")
        == 0
    )
    assert '"product_id":"new"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("stored", "args", "message"),
    [
        ([record("tee-1")], ["--locale", "fr-FR"], "no record has copy in fr-FR"),
        ([record("tee-1")], ["--locale", "xx"], "unknown locale"),
        ([record("tee-1")], ["--locale", "en-US", "--since", "yesterday"], "not an ISO 8601 time"),
    ],
)
def test_bad_input_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stored: list[ProductRecord],
    args: list[str],
    message: str,
) -> None:
    assert run(monkeypatch, stored, "--format", "google", *args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1


def test_empty_table_gives_a_header_only_feed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, [], "--format", "shopify", "--locale", "en-US") == 0
    assert capsys.readouterr().out.splitlines() == [
        "Handle,Title,Body (HTML),Product Category,Tags,SEO Title,SEO Description"
    ]


class ThrottledLambda:
    def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:
        return {"FunctionName": FunctionName, "Timeout": 300}

    def invoke(self, **_kwargs: object) -> None:
        error: Any = {"Error": {"Code": "TooManyRequestsException", "Message": "Rate Exceeded."}}
        raise ClientError(error, "Invoke")


class ThrottledDeployment:
    endpoint_url = None

    @property
    def outputs(self) -> dict[str, str]:
        return {"FeedExportFunctionName": "feed-export"}

    @property
    def session(self) -> ThrottledDeployment:
        return self

    def client(self, _service: str, **_options: object) -> ThrottledLambda:
        return ThrottledLambda()


def test_feeds_run_while_a_scheduled_run_holds_the_function_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(export_commands, "deployment_from", lambda _args: ThrottledDeployment())
    assert main(["feeds", "run"]) == 2
    err = capsys.readouterr().err
    assert "TooManyRequestsException" in err and len(err.strip().splitlines()) == 1
