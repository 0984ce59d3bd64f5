"""Every problem with a payload is a client error with its own code and 4xx status, never a payload echo."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from benchmarks.endpoint_speedup import product_photo
from describer_rules.contracts import MAX_QUESTIONS_PER_REQUEST
from describer_rules.endpoint_errors import EndpointErrorBody, EndpointErrorCode, EndpointRequestError
from describer_rules.model_files import METADATA_FILE
from endpoint import requests, s3_images
from endpoint.inference import input_fn, output_fn, predict_fn
from endpoint.model import DescriberModel

from .conftest import BUCKET

JSON = "application/json"
PHOTO = product_photo(31, (96, 128))
PHOTO_B64 = base64.b64encode(PHOTO).decode()
QUESTION = {"attribute": "Fit", "question": "What is the fit of the shirt in this picture?"}


def _reject(body: object, content_type: str = JSON) -> EndpointRequestError:
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    with pytest.raises(EndpointRequestError) as raised:
        input_fn(raw, content_type)
    return raised.value


def _reject_prediction(endpoint: DescriberModel, body: dict[str, object]) -> EndpointRequestError:
    request = input_fn(json.dumps(body), JSON)
    with pytest.raises(EndpointRequestError) as raised:
        predict_fn(request, endpoint)
    return raised.value


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"image": PHOTO_B64}, "prompt"),
        ({"prompt": QUESTION["question"]}, "image"),
        ({"prompt": "", "image": PHOTO_B64}, "prompt"),
        ({"image_s3": {"bucket": BUCKET}, "questions": [QUESTION]}, "image_s3.key"),
        ({"image_s3": {"bucket": BUCKET, "key": "a.jpg"}}, "questions"),
        (
            {"image_s3": {"bucket": BUCKET, "key": "a.jpg"}, "questions": [{"attribute": "Fit"}]},
            "questions.0",
        ),
    ],
)
def test_a_missing_field_is_named(body: dict[str, object], missing: str) -> None:
    error = _reject(body)
    assert (error.status, error.code) == (400, EndpointErrorCode.INVALID_REQUEST)
    assert missing in error.body.message
    assert PHOTO_B64 not in str(error)


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", "[1, 2]", "{}", '"text"'])
def test_a_body_that_is_no_request_is_rejected(body: bytes | str) -> None:
    error = _reject(body)
    assert (error.status, error.code) == (400, EndpointErrorCode.INVALID_REQUEST)


def test_too_many_questions() -> None:
    questions = [QUESTION] * (MAX_QUESTIONS_PER_REQUEST + 1)
    error = _reject({"image_s3": {"bucket": BUCKET, "key": "a.jpg"}, "questions": questions})
    assert (error.status, error.code) == (413, EndpointErrorCode.TOO_MANY_QUESTIONS)


def test_only_json_is_accepted_and_answered() -> None:
    error = _reject({"prompt": "x", "image": PHOTO_B64}, "text/csv")
    assert (error.status, error.code) == (415, EndpointErrorCode.UNSUPPORTED_MEDIA_TYPE)
    with pytest.raises(EndpointRequestError) as raised:
        output_fn({"Fit": "Slim Fit"}, "text/csv")
    assert raised.value.status == 415
    assert json.loads(output_fn({"Fit": "Slim Fit"}, "application/json, text/plain")) == {"Fit": "Slim Fit"}


def test_bad_base64(endpoint: DescriberModel) -> None:
    error = _reject_prediction(endpoint, {"prompt": QUESTION["question"], "image": "not base64 at all!"})
    assert (error.status, error.code) == (400, EndpointErrorCode.INVALID_REQUEST)


@pytest.mark.parametrize(
    ("image", "code"),
    [
        (b"GIF? no: a plain text file", EndpointErrorCode.NOT_AN_IMAGE),
        (PHOTO[: len(PHOTO) // 2], EndpointErrorCode.IMAGE_UNDECODABLE),
    ],
)
def test_an_undecodable_image(endpoint: DescriberModel, image: bytes, code: EndpointErrorCode) -> None:
    error = _reject_prediction(
        endpoint, {"prompt": QUESTION["question"], "image": base64.b64encode(image).decode()}
    )
    assert (error.status, error.code) == (422, code)
    assert len(endpoint.cache) == 0


def test_too_many_pixels(endpoint: DescriberModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requests, "MAX_IMAGE_PIXELS", 96 * 128 - 1)
    error = _reject_prediction(endpoint, {"prompt": QUESTION["question"], "image": PHOTO_B64})
    assert (error.status, error.code) == (413, EndpointErrorCode.IMAGE_TOO_MANY_PIXELS)


@pytest.mark.parametrize(
    ("bucket", "key"), [(BUCKET, "incoming/missing.jpg"), ("no-such-bucket", "incoming/a.jpg")]
)
def test_a_missing_s3_object(endpoint: DescriberModel, s3: object, bucket: str, key: str) -> None:
    error = _reject_prediction(
        endpoint, {"image_s3": {"bucket": bucket, "key": key}, "questions": [QUESTION]}
    )
    assert (error.status, error.code) == (404, EndpointErrorCode.OBJECT_NOT_FOUND)
    assert error.code.record_code.value == "OBJECT_NOT_FOUND"


def test_an_oversized_s3_object(endpoint: DescriberModel, s3, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.put_object(Bucket=BUCKET, Key="incoming/big.jpg", Body=PHOTO)
    monkeypatch.setattr(s3_images, "MAX_IMAGE_BYTES", len(PHOTO) - 1)
    error = _reject_prediction(
        endpoint, {"image_s3": {"bucket": BUCKET, "key": "incoming/big.jpg"}, "questions": [QUESTION]}
    )
    assert (error.status, error.code) == (413, EndpointErrorCode.IMAGE_TOO_LARGE)


def test_the_error_body_survives_the_sagemaker_model_error_message() -> None:
    error = _reject({"image": PHOTO_B64})
    # What SageMaker Runtime says when the Hugging Face toolkit answered 400 with str(error).
    message = f'Received client error (400) from primary with message "{error}". See the logs.'
    assert EndpointErrorBody.from_message(message) == error.body
    # The model server's own error JSON carries it as a string, and SageMaker quotes that.
    server_body = json.dumps(
        {"code": 400, "type": "InternalServerException", "message": str(error)}, indent=2
    )
    message = f'Received client error (400) from primary with message "{server_body}". See the logs.'
    assert EndpointErrorBody.from_message(message) == error.body
    assert EndpointErrorBody.from_message("Received server error (500) from primary") is None


def test_a_model_dir_with_an_invalid_temperature_is_refused_at_load(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    metadata = json.loads((broken / METADATA_FILE).read_text())
    metadata["calibration"] = {"temperature": 0}
    (broken / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="calibration: temperature: Input should be greater than 0"):
        DescriberModel.load(broken)
