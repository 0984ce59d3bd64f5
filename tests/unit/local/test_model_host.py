"""The local model host speaks SageMaker Runtime and Bedrock Runtime: checked with real boto3 clients."""

from __future__ import annotations

import json
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from describer.local.model_host import ModelHost
from describer.local.model_host.description_backends import OfflineWriter, OpenAICompatibleWriter
from describer.local.model_host.server import USAGE_PATH
from describer.local.offline_writer.description import OFFLINE_MODEL_ID
from describer_rules.catalogue import load_catalogue
from describer_rules.content_rules import check_reply
from describer_rules.contracts import ProductRequest
from describer_rules.endpoint_calls import product_request_body
from describer_rules.endpoint_errors import EndpointErrorBody, EndpointErrorCode
from describer_rules.prompts import system_prompt, user_message
from describer_rules.style_guide import StyleGuide
from describer_steps.settings import DescriptionSettings
from describer_steps.write_description import CopyWriter
from endpoint.serve import EntryPoint

# A stand-in for the endpoint's inference.py with the same contract: the toolkit's four functions,
# EndpointRequestError for a bad request, anything else for a crash.
_INFERENCE = textwrap.dedent(
    """
    import json
    from describer_rules.endpoint_errors import EndpointErrorCode, EndpointRequestError

    def model_fn(model_dir):
        return {"loaded_from": model_dir}

    def input_fn(body, content_type):
        if content_type != "application/json":
            raise EndpointRequestError(EndpointErrorCode.UNSUPPORTED_MEDIA_TYPE, "JSON only")
        return json.loads(body)

    def predict_fn(request, model):
        if request.get("key") == "missing":
            raise EndpointRequestError(EndpointErrorCode.OBJECT_NOT_FOUND, "no such object")
        if request.get("key") == "crash":
            raise RuntimeError("the model fell over")
        return {"echo": request, "model_dir": model["loaded_from"]}

    def output_fn(prediction, accept):
        return json.dumps(prediction)
    """
)
ENDPOINT = "describer-local"
JSON = "application/json"


def _serve(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    (directory / "code").mkdir()
    (directory / "code" / "inference.py").write_text(_INFERENCE)
    return directory


@pytest.fixture(scope="module")
def host_url(model_dir: Path) -> Iterator[str]:
    server = ModelHost(("127.0.0.1", 0), EntryPoint(model_dir), [ENDPOINT], OfflineWriter())
    yield from _serve(server)


def _client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )


def test_invoke_endpoint_returns_the_inference_output(host_url: str, model_dir: Path) -> None:
    response = _client("sagemaker-runtime", host_url).invoke_endpoint(
        EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps({"key": "a.jpg"})
    )
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert json.loads(response["Body"].read()) == {"echo": {"key": "a.jpg"}, "model_dir": str(model_dir)}


@pytest.mark.parametrize(
    ("payload", "content_type", "status", "code"),
    [
        ({"key": "missing"}, "application/json", 404, EndpointErrorCode.OBJECT_NOT_FOUND),
        ({"key": "a.jpg"}, "text/plain", 415, EndpointErrorCode.UNSUPPORTED_MEDIA_TYPE),
    ],
)
def test_a_rejected_request_is_a_model_error_carrying_the_endpoint_error(
    host_url: str, payload: dict[str, str], content_type: str, status: int, code: EndpointErrorCode
) -> None:
    client = _client("sagemaker-runtime", host_url)
    with pytest.raises(client.exceptions.ModelError) as raised:
        client.invoke_endpoint(EndpointName=ENDPOINT, ContentType=content_type, Body=json.dumps(payload))
    response = raised.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == status
    body = EndpointErrorBody.from_message(response["Error"]["Message"])
    assert body is not None
    assert body.error == code


def test_a_crash_in_the_model_is_a_model_error_with_status_500(host_url: str) -> None:
    client = _client("sagemaker-runtime", host_url)
    with pytest.raises(client.exceptions.ModelError) as raised:
        client.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body='{"key": "crash"}')
    assert raised.value.response["OriginalStatusCode"] == 500
    assert "the model fell over" in raised.value.response["OriginalMessage"]


def test_an_unknown_endpoint_is_a_validation_error(host_url: str) -> None:
    client = _client("sagemaker-runtime", host_url)
    with pytest.raises(client.exceptions.ValidationError, match="not found"):
        client.invoke_endpoint(EndpointName="nope", ContentType="application/json", Body="{}")


def _converse(url: str, attributes: dict[str, str], category: str, max_tokens: int = 400) -> Any:
    spec = load_catalogue().category(category)
    return _client("bedrock-runtime", url).converse(
        modelId=OFFLINE_MODEL_ID,
        system=[{"text": system_prompt(spec)}],
        messages=[{"role": "user", "content": [{"text": user_message(spec, attributes)}]}],
        inferenceConfig={"maxTokens": max_tokens, "temperature": 0.1},
    )


SHIRT = {
    "Sleeve Length": "Long Sleeves",
    "Pattern": "Checked",
    "Fit": "Slim Fit",
    "Fabric": "Cotton",
    "Collar": "Spread Collar",
    "Colour": "Navy Blue",
}


def _pipeline_request(
    model_id: str, locale: str, title_max_chars: int = 80, style: StyleGuide | None = None
) -> tuple[CopyWriter, dict[str, Any]]:
    """The request WriteDescription sends, built by its own code."""
    settings = DescriptionSettings(bedrock_model_id=model_id, title_max_chars=title_max_chars)
    spec = load_catalogue().category("Shirts")
    writer = CopyWriter(spec, SHIRT, {}, None, settings, style)
    return writer, writer.request(user_message(spec, SHIRT, locale))


@pytest.mark.parametrize("locale", ["en-US", "es-ES", "de-DE", "fr-FR"])
def test_converse_answers_the_pipelines_structured_request_with_valid_copy(
    host_url: str, locale: str
) -> None:
    writer, request = _pipeline_request(OFFLINE_MODEL_ID, locale, title_max_chars=60)
    assert "outputConfig" in request
    response = _client("bedrock-runtime", host_url).converse(**request)
    assert response["output"]["message"]["role"] == "assistant"
    assert response["stopReason"] == "end_turn"
    [block] = response["output"]["message"]["content"]
    content, broken = check_reply(block["text"], response["stopReason"], writer.rules(locale))
    assert content is not None and broken == []
    assert len(content.title) <= 60
    usage = response["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert response["additionalModelResponseFields"]["writer"] == OFFLINE_MODEL_ID


@pytest.mark.parametrize("locale", ["en-US", "fr-FR"])
def test_the_offline_writer_leaves_out_the_style_guides_words_to_avoid(host_url: str, locale: str) -> None:
    style = StyleGuide(words_to_avoid=["easy", "everyday", "facile", "quotidien"])
    writer, request = _pipeline_request(OFFLINE_MODEL_ID, locale, style=style)
    response = _client("bedrock-runtime", host_url).converse(**request)
    content, broken = check_reply(
        response["output"]["message"]["content"][0]["text"], "end_turn", writer.rules(locale)
    )
    assert content is not None and broken == []


def test_converse_answers_a_forced_tool_call_with_a_tool_use_block(host_url: str) -> None:
    writer, request = _pipeline_request("anthropic.claude-3-haiku-20240307-v1:0", "es-ES")
    assert "toolConfig" in request
    response = _client("bedrock-runtime", host_url).converse(**request)
    assert response["stopReason"] == "tool_use"
    [block] = response["output"]["message"]["content"]
    assert block["toolUse"]["name"] == "product_copy"
    content, broken = check_reply(block["toolUse"]["input"], response["stopReason"], writer.rules("es-ES"))
    assert content is not None and broken == [] and "Camisa" in content.title


def test_a_plain_converse_request_gets_a_plain_description(host_url: str) -> None:
    response = _converse(host_url, SHIRT, "Shirts")
    text = response["output"]["message"]["content"][0]["text"]
    for value in SHIRT.values():
        assert value.lower() in text.lower()


def test_converse_stops_at_max_tokens(host_url: str) -> None:
    response = _converse(host_url, SHIRT, "Shirts", max_tokens=10)
    assert response["stopReason"] == "max_tokens"
    assert response["usage"]["outputTokens"] <= 10


def test_a_converse_request_without_messages_is_a_validation_exception(host_url: str) -> None:
    client = _client("bedrock-runtime", host_url)
    with pytest.raises(client.exceptions.ValidationException):
        client.converse(modelId=OFFLINE_MODEL_ID, messages=[])


class _FakeChatServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible /chat/completions server: answers 429 when the model is called "busy"."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **request})
        if request["model"] == "busy":
            self.send_response(429)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps(
            {
                "model": request["model"],
                "choices": [
                    {"message": {"role": "assistant", "content": "A fine shirt."}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 123, "completion_tokens": 7},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def chat_server_url() -> Iterator[str]:
    _FakeChatServer.requests = []
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), _FakeChatServer))


def _forwarding_host(model_dir: Path, chat_url: str, model: str) -> ModelHost:
    writer = OpenAICompatibleWriter(chat_url + "/v1", model, api_key="sk-local")
    return ModelHost(("127.0.0.1", 0), EntryPoint(model_dir), [ENDPOINT], writer)


def test_converse_forwards_to_an_openai_compatible_server(model_dir: Path, chat_server_url: str) -> None:
    for url in _serve(_forwarding_host(model_dir, chat_server_url, "qwen-local")):
        response = _converse(url, SHIRT, "Shirts")
    assert response["output"]["message"]["content"][0]["text"] == "A fine shirt."
    assert response["usage"] == {"inputTokens": 123, "outputTokens": 7, "totalTokens": 130}
    assert response["additionalModelResponseFields"]["writer"] == "qwen-local"
    (sent,) = _FakeChatServer.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["auth"] == "Bearer sk-local"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["max_tokens"] == 400


def test_a_busy_openai_compatible_server_is_a_throttling_exception(
    model_dir: Path, chat_server_url: str
) -> None:
    for url in _serve(_forwarding_host(model_dir, chat_server_url, "busy")):
        with pytest.raises(ClientError) as raised:
            _converse(url, SHIRT, "Shirts")
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"


def test_usage_counts_what_was_served(model_dir: Path) -> None:
    server = ModelHost(("127.0.0.1", 0), EntryPoint(model_dir), [ENDPOINT], OfflineWriter())
    for url in _serve(server):
        runtime = _client("sagemaker-runtime", url)
        runtime.invoke_endpoint(
            EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps({"key": "a"})
        )
        request = {"key": "b", "questions": [{"attribute": "Fit"}, {"attribute": "Pattern"}]}
        runtime.invoke_endpoint(
            EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps(request)
        )
        with pytest.raises(runtime.exceptions.ModelError):  # a failed call serves nothing
            runtime.invoke_endpoint(
                EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps({"key": "crash"})
            )
        replies = [_converse(url, SHIRT, "Shirts"), _converse(url, SHIRT, "Shirts")]
        with urllib.request.urlopen(url + USAGE_PATH) as response:
            usage = json.loads(response.read())
    assert usage["endpoint"]["invocations"] == 2 and usage["endpoint"]["questions"] == 3
    assert usage["endpoint"]["seconds"] > 0
    assert list(usage["converse"]) == [OFFLINE_MODEL_ID]
    converse = usage["converse"][OFFLINE_MODEL_ID]
    assert converse == {
        "calls": 2,
        "input_tokens": sum(reply["usage"]["inputTokens"] for reply in replies),
        "output_tokens": sum(reply["usage"]["outputTokens"] for reply in replies),
    }
    assert usage["locales"] == {"en-US": converse}  # the prompts name no other locale


def test_calls_are_recorded_per_prefix_aware_id_with_their_routing_prefixes(model_dir: Path) -> None:
    server = ModelHost(("127.0.0.1", 0), EntryPoint(model_dir), [ENDPOINT], OfflineWriter())
    for url in _serve(server):
        client = _client("sagemaker-runtime", url)
        image = {"image_s3": {"bucket": "b", "key": "k.jpg"}}
        groups = [[{"attribute": "Fit", "question": "?"}], [{"attribute": "Neck", "question": "?"}]]
        for questions in groups:
            body = product_request_body(ProductRequest.model_validate({**image, "questions": questions}))
            client.invoke_endpoint(EndpointName=ENDPOINT, ContentType=JSON, PrefixAwareId="p1", Body=body)
        # Same id, but a body whose first bytes differ: a PREFIX_AWARE endpoint may route it elsewhere.
        client.invoke_endpoint(
            EndpointName=ENDPOINT, ContentType=JSON, PrefixAwareId="p1", Body='{"key": "x"}'
        )
        client.invoke_endpoint(EndpointName=ENDPOINT, ContentType=JSON, Body='{"key": "y"}')
        with pytest.raises(client.exceptions.ValidationError, match="PrefixAwareId"):
            client.invoke_endpoint(EndpointName=ENDPOINT, ContentType=JSON, PrefixAwareId="x" * 65, Body="{}")

        with urllib.request.urlopen(f"{url}/routing") as response:
            assert json.loads(response.read()) == {
                "p1": {"calls": 3, "prefixes": 2},
                "": {"calls": 1, "prefixes": 1},
            }


def test_batch_jobs_answer_on_bedrocks_own_routes(host_url: str) -> None:
    bedrock = _client("bedrock", host_url)
    arn = bedrock.create_model_invocation_job(
        jobName="copy-1-en-US-0",
        clientRequestToken="copy-1-en-US-0",
        roleArn="arn:aws:iam::000000000000:role/batch",
        modelId="us.anthropic.claude-haiku-4-5",
        inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://b/in.jsonl", "s3InputFormat": "JSONL"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://b/out/"}},
        timeoutDurationInHours=24,
        modelInvocationType="Converse",
    )["jobArn"]
    job = bedrock.get_model_invocation_job(jobIdentifier=arn)
    assert (job["jobName"], job["status"]) == ("copy-1-en-US-0", "Validating")
    bedrock.stop_model_invocation_job(jobIdentifier=arn)
    assert bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "Stopped"
    with pytest.raises(ClientError) as raised:
        bedrock.get_model_invocation_job(jobIdentifier="nope")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    request = urllib.request.Request(
        host_url + "/_local/batch-faults", data=b'{"rates": {"batch-expire": 0.5}}', method="PUT"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read())["faults"]["rates"] == {"batch-expire": 0.5}
