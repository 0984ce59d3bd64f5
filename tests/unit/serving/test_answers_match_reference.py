"""The served path (one cached vision pass, batched decoding) answers exactly as the reference path:
generation equals BLIP-2's own ``generate``; scoring equals BLIP-2's own teacher-forced likelihood."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import torch

from benchmarks.endpoint_speedup import benchmark_questions, product_photo, reference_generate
from describer_rules.answers import format_answer, parse_answer
from describer_rules.confidence import softmax
from describer_rules.contracts import ProductResponse, Question
from endpoint.inference import input_fn, output_fn, predict_fn
from endpoint.model import DescriberModel
from endpoint.requests import decode_image
from training.served_answers import answer_rows

from .conftest import BUCKET, MODEL_ID

SMALL_PHOTO = (96, 128)


def test_batched_cached_generation_equals_the_one_question_reference_path(endpoint: DescriberModel) -> None:
    _, questions = benchmark_questions(endpoint.catalogue, 8)
    prompts = [question.question for question in questions]
    every_answer: set[str] = set()
    for seed in range(3):
        photo = product_photo(seed, SMALL_PHOTO)
        expected = [reference_generate(endpoint, photo, prompt) for prompt in prompts]

        first = endpoint.generate_answers(endpoint.image_features(photo)[1], prompts)
        again = endpoint.generate_answers(endpoint.image_features(photo)[1], prompts)

        assert first == again == expected
        every_answer.update(expected)
    assert endpoint.cache.computations == 3
    assert endpoint.cache.hits == 3
    # The answers depend on image and question, so a decoding difference would have shown.
    assert len(every_answer) > 3


@torch.inference_mode()
def reference_log_likelihood(endpoint: DescriberModel, photo: bytes, question: str, answer: str) -> float:
    """BLIP-2's own forward pass (processor, vision, Q-Former, language model) with the answer as labels."""
    inputs = endpoint.processor(images=decode_image(photo), text=question, return_tensors="pt")
    labels = endpoint.processor.tokenizer(answer, return_tensors="pt").input_ids
    output = endpoint.model(**inputs, labels=labels)
    return -float(output.loss) * labels.shape[1]


def test_scores_equal_blip2s_own_likelihood_of_each_candidate(endpoint: DescriberModel) -> None:
    category, questions = benchmark_questions(endpoint.catalogue, 8)
    photo = product_photo(4, SMALL_PHOTO)
    _, features = endpoint.image_features(photo)

    answers, candidates = endpoint.score_and_answer(features, questions, category)

    assert endpoint.cache.computations == 1
    for question, answer, scored in zip(questions, answers, candidates, strict=True):
        assert scored is not None  # every benchmark question has a vocabulary
        expected = [
            reference_log_likelihood(
                endpoint, photo, question.question, format_answer(scored.attribute, value)
            )
            for value in scored.values
        ]
        assert scored.scores == pytest.approx(expected, abs=1e-3)
        probabilities = softmax(scored.scores, endpoint.calibration.temperature)
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        assert (answer.value, answer.known) == (scored.values[best], True)
        assert answer.raw == format_answer(scored.attribute, answer.value)
        assert answer.confidence == pytest.approx(probabilities[best])
        runners_up = sorted(probabilities, reverse=True)[1:3]
        assert [alternative.confidence for alternative in answer.alternatives] == pytest.approx(runners_up)
        assert answer.value not in {alternative.value for alternative in answer.alternatives}


def test_the_temperature_changes_confidence_not_the_answer(endpoint: DescriberModel) -> None:
    category, questions = benchmark_questions(endpoint.catalogue, 6)
    _, features = endpoint.image_features(product_photo(5, SMALL_PHOTO))
    sharp, _ = endpoint.score_and_answer(features, questions, category)
    endpoint.calibration = endpoint.calibration.model_copy(update={"temperature": 4.0})
    soft, _ = endpoint.score_and_answer(features, questions, category)

    assert [answer.value for answer in sharp] == [answer.value for answer in soft]
    assert all((s.confidence or 0) > (f.confidence or 0) for s, f in zip(sharp, soft, strict=True))


def test_an_attribute_with_its_own_temperature_uses_it(endpoint: DescriberModel) -> None:
    category, questions = benchmark_questions(endpoint.catalogue, 6)
    _, features = endpoint.image_features(product_photo(5, SMALL_PHOTO))
    before, _ = endpoint.score_and_answer(features, questions, category)
    first = questions[0].attribute
    calibration = endpoint.calibration
    endpoint.calibration = calibration.model_copy(
        update={"temperatures": {f"{category}/{first}": calibration.temperature * 4}}
    )
    after, _ = endpoint.score_and_answer(features, questions, category)
    endpoint.calibration = calibration

    assert (after[0].value, (after[0].confidence or 0) < (before[0].confidence or 0)) == (
        before[0].value,
        True,
    )
    assert [a.confidence for a in after[1:]] == [b.confidence for b in before[1:]]  # the others: global


def test_a_question_outside_the_catalogue_is_generated_and_flagged_unknown(endpoint: DescriberModel) -> None:
    photo = product_photo(6, SMALL_PHOTO)
    questions = [
        Question(
            attribute="Sleeve Length", question="What is the sleeve length of the shirt in this picture?"
        ),
        Question(attribute="Occasion", question="What is the colour of the product in this picture?"),
    ]
    response = endpoint.describe_image(photo, questions, "Shirts")

    sleeve, occasion = response.answers
    assert sleeve.confidence is not None and sleeve.known
    assert occasion.attribute == "Occasion"
    assert (occasion.known, occasion.confidence, occasion.alternatives) == (False, None, [])
    assert occasion.raw == reference_generate(endpoint, photo, questions[1].question)


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
    expected, _ = endpoint.score_and_answer(endpoint.image_features(photo)[1], questions, category)
    assert response.answers == expected
    assert all(answer.known and answer.confidence is not None for answer in response.answers)


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


def test_evaluation_measures_the_answers_the_endpoint_serves(endpoint: DescriberModel, s3, tmp_path) -> None:
    category, questions = benchmark_questions(endpoint.catalogue, 8)
    rows = []
    for seed in range(2):
        image = tmp_path / f"{seed}.jpg"
        image.write_bytes(product_photo(20 + seed, SMALL_PHOTO))
        s3.put_object(Bucket=BUCKET, Key=f"incoming/{category}/{seed}.jpg", Body=image.read_bytes())
        rows += [
            {"id": str(seed), "image": image.name, "article_type": category, "value": "", **q.model_dump()}
            for q in questions
        ]

    evaluated = [answer.answer for answer in answer_rows(endpoint, rows, tmp_path, progress=False)]

    served = []
    for seed in range(2):
        body = json.dumps(
            {
                "image_s3": {"bucket": BUCKET, "key": f"incoming/{category}/{seed}.jpg"},
                "questions": [question.model_dump() for question in questions],
                "category": category,
            }
        )
        output = output_fn(predict_fn(input_fn(body, "application/json"), endpoint), "application/json")
        served += ProductResponse.model_validate_json(output).answers
    assert evaluated == served
