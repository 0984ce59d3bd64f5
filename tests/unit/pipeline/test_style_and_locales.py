"""The brand's style guide (S3, validated, cached, least privilege) and the Locales parameter."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cfnlint.decode import decode
from write_description import app as write_description_app

from describer_aws.style_guides import _cached_guide, load_style_guide
from describer_rules.errors import StyleGuideInvalid
from describer_rules.locales import LOCALES_PATTERN, language_name, parse_locales
from describer_rules.style_guide import StyleGuide
from describer_steps.settings import TOOL_USE_MODELS, DescriptionSettings, load_settings

from .conftest import BUCKET, TEMPLATE, Aws, FakeLambdaContext

GUIDE = {
    "tone": "Warm, confident, a little playful",
    "words_to_avoid": ["cheap", "must-have"],
    "examples": ["Soft as a Sunday morning, sharp enough for Monday."],
}


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    _cached_guide.cache_clear()


def _put(aws: Aws, key: str, body: str) -> str:
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
    return f"s3://{BUCKET}/{key}"


def test_no_uri_means_no_guide(aws: Aws) -> None:
    assert load_style_guide("", aws.s3) is None


def test_a_guide_is_read_once_per_container(aws: Aws) -> None:
    uri = _put(aws, "brand/style.json", json.dumps(GUIDE))
    assert load_style_guide(uri, aws.s3) == StyleGuide.model_validate(GUIDE)
    aws.s3.delete_object(Bucket=BUCKET, Key="brand/style.json")
    assert load_style_guide(uri, aws.s3) == StyleGuide.model_validate(GUIDE)


@pytest.mark.parametrize(
    "body",
    [
        "tone: warm",
        json.dumps({**GUIDE, "examples": ["x"] * 6}),
        json.dumps({**GUIDE, "voice": "unknown field"}),
        json.dumps({**GUIDE, "words_to_avoid": "cheap"}),
    ],
)
def test_an_invalid_guide_is_style_guide_invalid(aws: Aws, body: str) -> None:
    uri = _put(aws, "brand/bad.json", body)
    with pytest.raises(StyleGuideInvalid) as raised:
        load_style_guide(uri, aws.s3)
    assert str(raised.value).startswith("STYLE_GUIDE_INVALID: ")


def test_a_configured_guide_that_cannot_be_read_fails_the_product(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STYLE_GUIDE_URI", f"s3://{BUCKET}/brand/missing.json")
    event = json.loads((TEMPLATE.parent / "events" / "write_description.json").read_text())
    with pytest.raises(StyleGuideInvalid, match=r"STYLE_GUIDE_INVALID: cannot read .* NoSuchKey"):
        write_description_app.handler(event, FakeLambdaContext())


def _template() -> dict[str, Any]:
    template, matches = decode(str(TEMPLATE))
    assert template is not None, matches
    return dict(template)


def test_the_template_reads_only_the_style_guide_object_and_only_when_configured() -> None:
    template = _template()
    assert template["Conditions"]["HasStyleGuide"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "StyleGuideUri"}, ""]}]
    }
    statements = template["Resources"]["WriteDescriptionFunction"]["Properties"]["Policies"][0]["Statement"]
    [conditional] = [s for s in statements if "Fn::If" in s]
    condition, statement, otherwise = conditional["Fn::If"]
    assert (condition, otherwise) == ("HasStyleGuide", {"Ref": "AWS::NoValue"})
    assert statement["Action"] == "s3:GetObject"
    path = statement["Resource"]["Fn::Sub"][1]["ObjectPath"]
    assert path == {"Fn::Select": [1, {"Fn::Split": ["s3://", {"Ref": "StyleGuideUri"}]}]}
    uri_pattern = template["Parameters"]["StyleGuideUri"]["AllowedPattern"]
    assert re.match(uri_pattern, "") and re.match(uri_pattern, "s3://brand-assets/voice/style.json")
    assert not re.match(uri_pattern, "https://example.com/style.json")


def test_the_locales_parameter_refuses_unknown_tags_at_deploy() -> None:
    parameter = _template()["Parameters"]["Locales"]
    assert parameter["AllowedPattern"] == LOCALES_PATTERN
    assert parameter["Default"] == "en-US"
    for accepted in ("en-US", "en-US,es-ES", "de-DE,fr-FR,es-419"):
        assert re.match(LOCALES_PATTERN, accepted), accepted
        assert parse_locales(accepted) == accepted.split(",")
    for refused in ("", "english", "en_US", "en-us", "xx-YY", "en-US,", "en-US, es-ES"):
        assert not re.match(LOCALES_PATTERN, refused), refused


def test_locale_settings_read_from_the_environment() -> None:
    settings = load_settings(DescriptionSettings, {"BEDROCK_MODEL_ID": "m", "LOCALES": "es-ES,en-US"})
    assert settings.locales == ["es-ES", "en-US"] and settings.default_locale == "es-ES"
    assert language_name("es-ES") == "Spanish (es-ES)"
    with pytest.raises(ValueError, match="unknown locale 'xx-YY'"):
        load_settings(DescriptionSettings, {"BEDROCK_MODEL_ID": "m", "LOCALES": "en-US,xx-YY"})
    with pytest.raises(ValueError, match="repeated"):
        load_settings(DescriptionSettings, {"BEDROCK_MODEL_ID": "m", "LOCALES": "en-US,en-US"})


def test_the_tool_use_models_parameter_defaults_to_the_built_in_list() -> None:
    parameter = _template()["Parameters"]["ToolUseModels"]
    assert parameter["Default"] == ",".join(TOOL_USE_MODELS)
    assert load_settings(DescriptionSettings, {"BEDROCK_MODEL_ID": "m"}).tool_use_models == list(
        TOOL_USE_MODELS
    )
