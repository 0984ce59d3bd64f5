"""The documented example record (docs/record.md) and the sample events in events/ are what the code
really reads and writes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import BaseModel
from save_result import app as save_result_app

from describer_aws.product_events import product_event
from describer_aws.results_table import ResultsTable
from describer_rules.catalogue import load_catalogue
from describer_rules.content_rules import CopyRules, violations
from describer_rules.contracts import ProductEventDetail, ProductRecord, Status
from describer_steps.backfill_plan import PlanInput
from describer_steps.states import (
    AskInput,
    DescribeInput,
    FailureInput,
    MergeInput,
    ObjectCreatedEvent,
    PrepareInput,
    ProductIdentity,
    SaveInput,
    WorkflowInput,
)

from .conftest import BUCKET, REPO, Aws, FakeLambdaContext

# Written at run time, so they differ from the example by nature.
VOLATILE = {"created_at", "updated_at"}


def documented_example_record() -> dict[str, Any]:
    doc = (REPO / "docs" / "record.md").read_text()
    section = doc.split("\n## An example record\n", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```json\n(.*?)\n```", section, flags=re.DOTALL)
    return dict(json.loads(block))


def test_documented_example_is_a_product_record() -> None:
    example = documented_example_record()
    record = ProductRecord.model_validate(example)
    assert record.model_dump(mode="json", exclude_none=True) == example


def test_documented_example_is_exactly_what_save_result_writes(aws: Aws) -> None:
    example = documented_example_record()
    source = {"bucket": BUCKET, "key": example["source_key"], "version_id": example["source_version"]}
    event = {
        "execution_name": example["execution_name"],
        "execution_start": "2026-11-21T03:00:00.081Z",
        "product": {
            "product_id": example["product_id"],
            "category": example["category"],
            "source": source,
            "order_token": example["order_token"],
            "images": example["images"],
            "photos": [
                {"bucket": BUCKET, "key": image["key"], "version_id": image["version"]}
                for image in example["images"]
                if image["status"] == "used"
            ],
        },
        "prepare_ms": example["timings_ms"]["prepare"],
        "merged": {
            "attributes": example["attributes"],
            "unverified_attributes": example["unverified_attributes"],
            "unknown_attributes": example["unknown_attributes"],
            "confidence": example["confidence"],
            "alternatives": example["alternatives"],
            "photos_agreed": example["photos_agreed"],
            "needs_review": example["needs_review"],
            "endpoint": example["model_ids"]["attributes"],
            "endpoint_ms": example["timings_ms"]["attributes"],
            "endpoint_calls": example["cost"]["endpoint_calls"],
            "endpoint_wall_ms": example["timings_ms"]["attributes_wall"],
        },
        "description": {
            "text": example["description"],
            "model_id": example["model_ids"]["description"],
            "input_tokens": sum(usage["input"] for usage in example["token_usage"].values()),
            "output_tokens": sum(usage["output"] for usage in example["token_usage"].values()),
            "attempts": 1,
            "description_ms": example["timings_ms"]["description"],
            "content": example["content"],
            "token_usage": example["token_usage"],
        },
    }
    # Prepare's claim first, as in a run: the record's version 1, SaveResult's 2.
    claim = ProductIdentity.model_validate(event["product"]).record(
        Status.PROCESSING, example["execution_name"]
    )
    assert ResultsTable("results-test", aws.dynamodb).write_if_current(claim)
    assert save_result_app.handler(event, FakeLambdaContext())["saved"] is True
    stored = aws.dynamodb.get_item(TableName="results-test", Key={"product_id": {"S": example["product_id"]}})
    from describer_aws.results_table import _from_item

    written = ProductRecord.model_validate(_from_item(stored["Item"])).model_dump(
        mode="json", exclude_none=True
    )
    assert set(written) == set(example)
    expected = {**example, "source_bucket": BUCKET}
    for field in VOLATILE:
        written.pop(field), expected.pop(field)
    written["timings_ms"].pop("total"), expected["timings_ms"].pop("total")
    assert written == expected


def test_documented_example_content_passes_the_validator() -> None:
    record = ProductRecord.model_validate(documented_example_record())
    default_locale = next(iter(record.content))
    assert record.description == record.content[default_locale].description
    for locale, content in record.content.items():
        rules = CopyRules(
            category=load_catalogue().category(record.category),
            attributes=record.attributes,
            default_locale=locale == default_locale,
        )
        assert violations(content, rules) == [], locale


def test_sample_product_events_are_what_the_final_steps_publish() -> None:
    described = json.loads((REPO / "events" / "product_described.json").read_text())
    entry = product_event(ProductRecord.model_validate(documented_example_record()), "bus")
    assert (entry["Source"], entry["DetailType"]) == (described["source"], described["detail-type"])
    assert json.loads(entry["Detail"]) == described["detail"]
    failed = json.loads((REPO / "events" / "product_description_failed.json").read_text())
    detail = ProductEventDetail.model_validate(failed["detail"])
    assert (failed["detail-type"], detail.status, detail.locales) == (
        "Product Description Failed",
        "FAILED",
        [],
    )
    assert detail.model_dump(mode="json", exclude_none=True) == failed["detail"]


@pytest.mark.parametrize(
    ("file_name", "model"),
    [
        ("eventbridge_object_created.json", ObjectCreatedEvent),
        ("workflow_input.json", WorkflowInput),
        ("prepare.json", PrepareInput),
        ("ask_attribute.json", AskInput),
        ("merge_attributes.json", MergeInput),
        ("write_description.json", DescribeInput),
        ("save_result.json", SaveInput),
        ("record_failure.json", FailureInput),
        ("plan_backfill_item.json", PlanInput),
    ],
)
def test_sample_events_parse_as_their_state_inputs(file_name: str, model: type[BaseModel]) -> None:
    model.model_validate_json((REPO / "events" / file_name).read_text())


def test_sample_events_agree_with_each_other() -> None:
    events = REPO / "events"
    workflow = WorkflowInput.model_validate_json((events / "workflow_input.json").read_text())
    event = ObjectCreatedEvent.model_validate_json((events / "eventbridge_object_created.json").read_text())
    sqs_body = json.loads((events / "sqs_object_created.json").read_text())["Records"][0]["body"]
    assert WorkflowInput.from_event(event) == workflow
    assert ObjectCreatedEvent.model_validate_json(sqs_body) == event
    prepare = PrepareInput.model_validate_json((events / "prepare.json").read_text())
    assert prepare.execution_name == workflow.execution_name
    save = SaveInput.model_validate_json((events / "save_result.json").read_text())
    assert save.product.order_token == workflow.order_token
