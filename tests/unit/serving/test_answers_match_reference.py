"""The served path (one cached vision pass, one batched decode) answers exactly as the reference path."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from describer_core.answers import parse_answer
from describer_core.contracts import ProductResponse, Question
from training.evaluate import predict
from training.serving.bench import benchmark_questions, product_photo, reference_generate
from training.serving.inference import DescriberModel, input_fn, output_fn, predict_fn

from .conftest import BUCKET, MODEL_ID

SMALL_PHOTO = (96, 128)


def test_batched_cached_answers_equal_the_one_question_reference_path(endpoint: DescriberModel) -> None:
    category, questions = benchmark_questions(endpoint.catalogue, 8)
    every_answer: set[str] = set()
    for seed in range(3):
        photo = product_photo(seed, SMALL_PHOTO)
        expected = [reference_generate(endpoint, photo, question.question) for question in questions]

        first = endpoint.describe_image(photo, questions, category)
        again = endpoint.describe_image(photo, questions, category)

        assert [answer.raw for answer in first.answers] == expected
        assert [answer.raw for answer in again.answers] == expected
        every_answer.update(expected)
    assert endpoint.cache.computations == 3
    assert endpoint.cache.hits == 3
    # The answers depend on image and question, so a decoding difference would have shown.
    assert len(every_answer) > 3


def test_reference_request_end_to_end(endpoint: DescriberModel) -> None:
    photo = product_photo(11, SMALL_PHOTO)
    shirts = endpoint.catalogue.category("Shirts")
    sleeve = shirts.attribute("Sleeve Length")
    body = json.dumps({"prompt": shirts.question_for(sleeve), "image": base64.b64encode(photo).decode()})

    answer = json.loads(
        output_fn(predict_fn(input_fn(body, "application/json"), endpoint), "application/json")
    )

    raw = reference_generate(endpoint, photo, shirts.question_for(sleeve))
    assert answer == {"Sleeve Length": parse_answer(raw, sleeve).value}


def test_product_request_end_to_end_reads_the_image_from_s3(endpoint: DescriberModel, s3) -> None:
    photo = product_photo(12, SMALL_PHOTO)
    s3.put_object(Bucket=BUCKET, Key="incoming/Shirts/123.jpg", Body=photo)
    category, questions = benchmark_questions(endpoint.catalogue, 4)
    body = json.dumps(
        {
            "image_s3": {"bucket": BUCKET, "key": "incoming/Shirts/123.jpg"},
            "questions": [question.model_dump() for question in questions],
            "category": category,
        }
    ).encode()

    output = output_fn(predict_fn(input_fn(body, "application/json; charset=utf-8"), endpoint), "*/*")

    response = ProductResponse.model_validate_json(output)
    assert response.model_id == MODEL_ID
    assert response.image_digest == hashlib.sha256(photo).hexdigest()
    assert [answer.attribute for answer in response.answers] == [question.attribute for question in questions]
    assert [answer.raw for answer in response.answers] == [
        reference_generate(endpoint, photo, question.question) for question in questions
    ]


def test_answers_are_normalised_against_the_model_dirs_catalogue(
    endpoint: DescriberModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    said = {"Sleeve Length": "Sleeve Length: long sleeves", "Fit": "Fit: Baggy Fit"}
    monkeypatch.setattr(
        endpoint, "generate_answers", lambda features, prompts: [said[prompt] for prompt in prompts]
    )
    questions = [Question(attribute=name, question=name) for name in said]
    response = endpoint.describe_image(product_photo(13, SMALL_PHOTO), questions, "Shirts")

    sleeve, fit = response.answers
    assert (sleeve.value, sleeve.known, sleeve.raw) == ("Long Sleeves", True, said["Sleeve Length"])
    assert (fit.value, fit.known, fit.raw) == ("Baggy Fit", False, said["Fit"])


@pytest.mark.parametrize(
    ("prompt", "said", "expected"),
    [
        ("What is the fit of the shirt in this picture?", "slim fit", {"Fit": "Slim Fit"}),
        ("Which fit is it?", "Fit: slim fit", {"Fit": "Slim Fit"}),
        ("Anything else?", "a nice shirt", {"answer": "a nice shirt"}),
    ],
)
def test_a_reference_answer_is_keyed_by_the_attribute_asked_or_named(
    endpoint: DescriberModel, prompt: str, said: str, expected: dict[str, str]
) -> None:
    assert endpoint.reference_answer(prompt, said) == expected


def test_evaluation_measures_the_answers_the_endpoint_serves(
    endpoint: DescriberModel, model_dir, tmp_path
) -> None:
    category, questions = benchmark_questions(endpoint.catalogue, 8)
    rows = []
    for seed in range(2):
        image = tmp_path / f"{seed}.jpg"
        image.write_bytes(product_photo(20 + seed, SMALL_PHOTO))
        rows += [{"id": str(seed), "image": image.name, "question": q.question} for q in questions]

    evaluated = predict(model_dir, rows, tmp_path, progress=False)

    # Both with their own default token budget: this random-weight model never stops on its own, so
    # any difference between the budgets shows up in the answers.
    served = []
    for seed in range(2):
        response = endpoint.describe_image((tmp_path / f"{seed}.jpg").read_bytes(), questions, category)
        served += [answer.raw for answer in response.answers]
    assert evaluated == served
