"""The template scanner's suppressions: each one names a check and says why it does not apply."""

from __future__ import annotations

import re

from cfnlint.decode import decode

from .conftest import TEMPLATE


def test_every_checkov_skip_has_a_reason() -> None:
    template, matches = decode(str(TEMPLATE))
    assert template is not None, matches
    skips = [
        (name, skip)
        for name, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), name
        assert len(skip.get("comment", "").split()) >= 5, (name, skip["id"])
