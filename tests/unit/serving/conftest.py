"""A tiny BLIP-2 model directory in the real layout, built once per session, and a fresh endpoint per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import torch
from moto import mock_aws
from transformers import Blip2ForConditionalGeneration, Blip2Processor

from describer_rules.catalogue import load_catalogue
from endpoint.inference import model_fn
from endpoint.model import DescriberModel
from training.model_dir import ModelMetadata, write_model_dir
from training.tiny import build_base_model_dir

MODEL_ID = "describer-test-tiny"
BUCKET = "uploads"


def _spread_weights(model: Blip2ForConditionalGeneration, seed: int = 0) -> None:
    # Freshly initialised weights answer everything with the same padding; wider random weights make
    # the answers depend on the image and the question, so comparing two decoding paths can fail.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("serving")
    base = build_base_model_dir("tiny", work / "base")
    model = Blip2ForConditionalGeneration.from_pretrained(base)
    _spread_weights(model)
    metadata = ModelMetadata(model_id=MODEL_ID, base_model="tiny", preset="tiny")
    processor = Blip2Processor.from_pretrained(base)
    return write_model_dir(model, processor, load_catalogue(), metadata, work / "model")


@pytest.fixture(scope="session")
def loaded_model(model_dir: Path) -> DescriberModel:
    return model_fn(str(model_dir))


@pytest.fixture
def endpoint(loaded_model: DescriberModel) -> DescriberModel:
    """The loaded weights with an empty vision cache and no S3 client yet."""
    return DescriberModel(
        loaded_model.model, loaded_model.processor, loaded_model.catalogue, loaded_model.model_id
    )


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # The tiny model's operations are too small to share between threads: a second OpenMP thread
    # only spin-waits, and on a busy 2-core machine it made these tests several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
