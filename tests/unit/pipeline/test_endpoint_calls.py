"""Question groups, the routing of a product's calls to one instance, and the settings that shape them."""

from __future__ import annotations

import json

import pytest
from cfnlint.decode import decode
from prepare import app as prepare_app
from pydantic import ValidationError

from describer_rules.catalogue import load_catalogue
from describer_rules.contracts import MAX_QUESTIONS_PER_REQUEST, ProductRequest, Question, S3ObjectRef
from describer_rules.endpoint_calls import (
    DEFAULT_QUESTIONS_PER_CALL,
    ROUTING_PREFIX_BYTES,
    group_questions,
    prefix_aware_id,
    product_request_body,
)
from describer_steps.settings import DEFAULT_REVIEW_THRESHOLD, PrepareSettings, ReviewSettings, load_settings
from describer_steps.states import WorkflowInput

from .conftest import BUCKET, REPO, Aws, FakeLambdaContext, image_bytes

IMAGE = S3ObjectRef(bucket="uploads", key="incoming/Shirts/15970.jpg", version_id="v7")


@pytest.mark.parametrize(
    ("count", "per_call", "sizes"),
    [
        (8, 4, [4, 4]),
        (6, 4, [3, 3]),
        (7, 3, [3, 2, 2]),
        (3, 4, [3]),
        (6, 1, [1, 1, 1, 1, 1, 1]),
        (6, 16, [6]),
        (0, 4, []),
    ],
)
def test_questions_go_out_in_the_fewest_even_groups_in_order(
    count: int, per_call: int, sizes: list[int]
) -> None:
    questions = list(range(count))
    groups = group_questions(questions, per_call)
    assert [len(group) for group in groups] == sizes
    assert [item for group in groups for item in group] == questions


def test_a_group_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="questions_per_call"):
        group_questions([1, 2], 0)


def _request(questions: list[tuple[str, str]]) -> ProductRequest:
    return ProductRequest(
        image_s3=IMAGE, category="Shirts", questions=[Question(attribute=a, question=q) for a, q in questions]
    )


def test_every_group_of_an_image_shares_the_routing_prefix_and_id() -> None:
    groups = group_questions(load_catalogue().questions("Shirts"), 3)
    bodies = [product_request_body(_request(group)) for group in groups]

    first, second = bodies
    assert first[:ROUTING_PREFIX_BYTES] == second[:ROUTING_PREFIX_BYTES]
    assert first[ROUTING_PREFIX_BYTES:] != second[ROUTING_PREFIX_BYTES:]
    for body, group in zip(bodies, groups, strict=True):
        # Still the one JSON request, whitespace and all.
        assert ProductRequest.model_validate(json.loads(body)) == _request(group)
    other = IMAGE.model_copy(update={"version_id": "v8"})
    assert prefix_aware_id(IMAGE) == prefix_aware_id(IMAGE.model_copy())
    assert prefix_aware_id(IMAGE) != prefix_aware_id(other)
    assert len(prefix_aware_id(IMAGE)) == 64  # the header's maximum


def test_the_groups_of_a_product_with_several_photos_share_the_prefix_and_name_every_photo() -> None:
    others = [IMAGE.model_copy(update={"key": f"incoming/Shirts/P/{n}.jpg"}) for n in range(3)]
    groups = group_questions(load_catalogue().questions("Shirts"), 3)
    requests = [_request(group).model_copy(update={"images_s3": others}) for group in groups]
    first, second = (product_request_body(request) for request in requests)
    assert first[:ROUTING_PREFIX_BYTES] == second[:ROUTING_PREFIX_BYTES]
    assert [ProductRequest.model_validate_json(body) for body in (first, second)] == requests
    # One photo: no "images_s3" at all, the body an endpoint without several photos reads.
    assert b"images_s3" not in product_request_body(_request(groups[0]))


def test_an_image_reference_longer_than_the_prefix_is_not_padded() -> None:
    long_key = IMAGE.model_copy(update={"key": "incoming/Shirts/" + "x" * 1100 + ".jpg"})
    body = product_request_body(
        ProductRequest(image_s3=long_key, questions=[Question(attribute="Fit", question="?")])
    )
    assert b"  " not in body
    assert ProductRequest.model_validate_json(body).image_s3 == long_key


@pytest.mark.parametrize(("value", "accepted"), [("0", False), ("1", True), ("16", True), ("17", False)])
def test_questions_per_call_is_validated_at_load_naming_the_setting(value: str, accepted: bool) -> None:
    environ = {"RESULTS_TABLE_NAME": "results", "MAP_CONCURRENCY": "4", "QUESTIONS_PER_CALL": value}
    if accepted:
        assert load_settings(PrepareSettings, environ).questions_per_call == int(value)
    else:
        with pytest.raises(ValidationError, match="questions_per_call"):
            load_settings(PrepareSettings, environ)


@pytest.mark.parametrize(("value", "accepted"), [("-0.1", False), ("0", True), ("0.8", True), ("1.5", False)])
def test_review_threshold_is_validated_at_load_naming_the_setting(value: str, accepted: bool) -> None:
    if accepted:
        assert load_settings(ReviewSettings, {"REVIEW_THRESHOLD": value}).review_threshold == float(value)
    else:
        with pytest.raises(ValidationError, match="review_threshold"):
            load_settings(ReviewSettings, {"REVIEW_THRESHOLD": value})


def test_the_template_constrains_the_parameters_as_the_settings_do() -> None:
    template, matches = decode(str(REPO / "template.yaml"))
    assert template is not None, matches
    per_call, threshold = (
        template["Parameters"]["QuestionsPerCall"],
        template["Parameters"]["ReviewThreshold"],
    )
    assert (per_call["MinValue"], per_call["MaxValue"]) == (1, MAX_QUESTIONS_PER_REQUEST)
    assert per_call["Default"] == DEFAULT_QUESTIONS_PER_CALL
    assert (threshold["MinValue"], threshold["MaxValue"]) == (0, 1)
    assert threshold["Default"] == DEFAULT_REVIEW_THRESHOLD
    prepare_env = template["Resources"]["PrepareFunction"]["Properties"]["Environment"]["Variables"]
    assert prepare_env["QUESTIONS_PER_CALL"] == {"Ref": "QuestionsPerCall"}
    global_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert global_env["REVIEW_THRESHOLD"] == {"Ref": "ReviewThreshold"}


def test_prepare_groups_a_products_questions(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUESTIONS_PER_CALL", "4")
    version = aws.upload("incoming/Shirts/15970.jpg", image_bytes("JPEG"))
    workflow = WorkflowInput(
        bucket=BUCKET, key="incoming/Shirts/15970.jpg", version_id=version, event_time="2026-11-21T03:00:00Z"
    )
    output = prepare_app.handler(
        {"workflow": workflow.model_dump(), "execution_name": workflow.execution_name}, FakeLambdaContext()
    )
    questions = output["questions"]
    assert len(questions) == 6
    assert output["question_groups"] == [questions[:3], questions[3:]]
