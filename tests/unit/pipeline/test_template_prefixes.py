"""The template's key prefixes are one folder each and disjoint, refused at deploy otherwise.

The Rules and parameter patterns are evaluated with the emulator's CloudFormation engine (ministack,
what the local stack deploys with), which applies them as CloudFormation does.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from cfnlint.decode import decode
from ministack.services.cloudformation.engine import (
    _check_parameter_constraints,
    _check_rules_section,
    _evaluate_rules,
)

from .conftest import REPO

PREFIXES = ("UploadPrefix", "BackfillPrefix")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, _ = decode(str(REPO / "template.yaml"))
    assert decoded is not None
    return dict(decoded)


def _deploy_check(template: dict[str, Any], **values: str) -> None:
    """What CreateStack checks of these two parameters: their patterns, then the Rules."""
    parameters = template["Parameters"]
    chosen = {name: values.get(name, str(parameters[name]["Default"])) for name in PREFIXES}
    for name, value in chosen.items():
        _check_parameter_constraints(name, parameters[name], "String", value)
    _check_rules_section(template)
    _evaluate_rules(template, {name: {"Value": value} for name, value in chosen.items()}, {})


def test_the_default_prefixes_deploy(template: dict[str, Any]) -> None:
    _deploy_check(template)
    _deploy_check(template, UploadPrefix="uploads/", BackfillPrefix="old-catalogue/")


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        ({"UploadPrefix": ""}, "UploadPrefix"),  # every key in the bucket would start a run
        ({"UploadPrefix": "catalogue/"}, "must differ"),
        ({"UploadPrefix": "backfill/"}, "the backfill's results"),
        ({"BackfillPrefix": "backfill/"}, "the backfill's results"),
        ({"UploadPrefix": "feeds/"}, "channel feeds"),
        ({"BackfillPrefix": "feed-state/"}, "channel feeds"),
        ({"UploadPrefix": "catalogue/new/"}, "UploadPrefix"),  # nested: Rules cannot compare it
        ({"BackfillPrefix": "incoming/old/"}, "BackfillPrefix"),
        ({"UploadPrefix": "incoming"}, "UploadPrefix"),
    ],
)
def test_overlapping_or_empty_prefixes_are_refused(
    template: dict[str, Any], values: dict[str, str], refusal: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(refusal)):
        _deploy_check(template, **values)


def test_an_empty_upload_prefix_is_refused_by_a_rule_too(template: dict[str, Any]) -> None:
    """The pattern already refuses it; the rule says why, and holds if the pattern is ever loosened."""
    with pytest.raises(ValueError, match="must not be empty"):
        _evaluate_rules(
            template, {"UploadPrefix": {"Value": ""}, "BackfillPrefix": {"Value": "catalogue/"}}, {}
        )


def test_the_rules_name_every_folder_the_stack_writes_to(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    backfill = resources["BackfillStateMachine"]["Properties"]["DefinitionSubstitutions"]
    feeds = resources["FeedExportFunction"]["Properties"]["Environment"]["Variables"]
    batch_copy = resources["QueueCopyFunction"]["Properties"]["Environment"]["Variables"]["BATCH_COPY_PREFIX"]
    written = [
        backfill["BackfillResultsPrefix"],
        batch_copy,
        feeds["FEED_PREFIX"],
        feeds["FEED_STATE_PREFIX"],
    ]
    reserved = {prefix.split("/", 1)[0] + "/" for prefix in written}
    for assertion in template["Rules"]["PrefixesAreDisjoint"]["Assertions"][1:]:
        listed, _ = assertion["Assert"]["Fn::Not"][0]["Fn::Contains"]
        assert set(listed) == reserved
