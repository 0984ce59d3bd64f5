from __future__ import annotations

import re

import pytest

from describer_rules.contracts import CategorySource, ErrorCode, S3ObjectRef, Status
from describer_rules.errors import InvalidInput
from describer_rules.keys import (
    identify,
    is_nested,
    key_candidates,
    photo_set_execution_name,
    product_folder,
)
from describer_steps.states import ProductIdentity, WorkflowInput, redrive_count_of


@pytest.mark.parametrize(
    ("event_key", "decoded"),
    [
        ("incoming/Shirts/blue+oxford+shirt.jpg", "incoming/Shirts/blue oxford shirt.jpg"),
        ("incoming/Shirts/blue%20oxford.jpg", "incoming/Shirts/blue oxford.jpg"),
        ("incoming/Shirts/a%2Bb.jpg", "incoming/Shirts/a+b.jpg"),
        ("incoming/Tshirts/t%C3%A9e-%E2%9C%93.png", "incoming/Tshirts/tée-✓.png"),
    ],
)
def test_event_keys_are_url_decoded_first(event_key: str, decoded: str) -> None:
    assert key_candidates(event_key) == [decoded, event_key]


def test_a_key_without_encoding_is_its_only_candidate() -> None:
    assert key_candidates("incoming/Shirts/15970.jpg") == ["incoming/Shirts/15970.jpg"]


def test_percent_encoding_that_is_not_utf8_is_an_invalid_key() -> None:
    with pytest.raises(InvalidInput) as raised:
        key_candidates("incoming/%FF%FE.jpg")
    assert raised.value.code is ErrorCode.INVALID_KEY


@pytest.mark.parametrize(
    ("key", "metadata", "product_id", "category"),
    [
        ("incoming/Shirts/15970.jpg", {}, "15970", "Shirts"),
        ("incoming/15970.jpeg", {}, "15970", None),
        ("incoming/brand/Tshirts/tee 1.webp", {}, "tee 1", "Tshirts"),
        ("incoming/Shirts/photo.jpg", {"product-id": "SKU-9", "category": "Tshirts"}, "SKU-9", "Tshirts"),
        ("incoming/Shirts/photo.jpg", {"product-id": "SKU-9"}, "SKU-9", "Shirts"),
        ("incoming/.hidden", {}, ".hidden", None),
    ],
)
def test_product_id_and_category_follow_the_key_convention_with_metadata_first(
    key: str, metadata: dict[str, str], product_id: str, category: str | None
) -> None:
    parts = identify(key, "incoming/", metadata, is_category=_known)
    assert (parts.product_id, parts.category_hint) == (product_id, category)


def _known(name: str) -> bool:
    return name in {"Shirts", "Tshirts"}


@pytest.mark.parametrize(
    ("key", "folder"),
    [
        ("incoming/Shirts/15970/front.jpg", "incoming/Shirts/15970/"),
        ("incoming/Shirts/15970/", "incoming/Shirts/15970/"),
        ("incoming/Jeans/J-1/a b.png", "incoming/Jeans/J-1/"),
        ("incoming/Shirts/15970/old/x.jpg", "incoming/Shirts/15970/"),
        ("incoming/Shirts/15970.jpg", None),
        ("incoming/15970.jpg", None),
        ("incoming/brand/Tshirts/tee 1.webp", None),  # the folder above the file is a category
        ("incoming/Shirts//x.jpg", None),
    ],
)
def test_a_product_folder_is_two_folders_down_unless_the_last_is_a_category(
    key: str, folder: str | None
) -> None:
    assert product_folder(key, "incoming/", _known) == folder


@pytest.mark.parametrize(
    ("key", "metadata", "product_id", "category", "source"),
    [
        ("incoming/Shirts/15970/front.jpg", {}, "15970", "Shirts", CategorySource.KEY),
        ("incoming/Shirts/15970/", {}, "15970", "Shirts", CategorySource.KEY),
        ("incoming/Shirts/15970/back.jpg", {"product-id": "SKU-9"}, "SKU-9", "Shirts", CategorySource.KEY),
        (
            "incoming/Shirts/15970/back.jpg",
            {"category": "Tshirts"},
            "15970",
            "Tshirts",
            CategorySource.METADATA,
        ),
        ("catalogue/Tshirts/T-7/detail.webp", {}, "T-7", "Tshirts", CategorySource.KEY),
    ],
)
def test_a_product_folder_names_the_product_with_metadata_first(
    key: str, metadata: dict[str, str], product_id: str, category: str, source: CategorySource
) -> None:
    parts = identify(key, ("incoming/", "catalogue/"), metadata, is_category=_known)
    assert (parts.product_id, parts.category_hint, parts.category_source) == (product_id, category, source)


def test_a_photo_in_a_sub_folder_is_nested() -> None:
    assert is_nested("incoming/Shirts/15970/old/x.jpg", "incoming/Shirts/15970/")
    assert not is_nested("incoming/Shirts/15970/x.jpg", "incoming/Shirts/15970/")


def test_a_photo_set_is_named_by_its_keys_versions_and_listing() -> None:
    photos = [("incoming/Shirts/1/a.jpg", "v1"), ("incoming/Shirts/1/b.jpg", "v2")]
    name = photo_set_execution_name("b", "incoming/Shirts/1/", photos, "t1")
    assert name == photo_set_execution_name("b", "incoming/Shirts/1/", list(reversed(photos)), "t1")
    assert name.startswith("1-set-") and len(name) <= 80 and re.fullmatch(r"[A-Za-z0-9_-]+", name)
    others = {
        photo_set_execution_name("b", "incoming/Shirts/1/", photos[:1], "t1"),
        photo_set_execution_name("b", "incoming/Shirts/1/", [(photos[0][0], "v9"), photos[1]], "t1"),
        photo_set_execution_name("b", "incoming/Shirts/1/", photos, "t2"),
        photo_set_execution_name("b", "incoming/Shirts/1/", [], "t1"),
    }
    assert name not in others and len(others) == 4
    long = photo_set_execution_name("b", "incoming/Shirts/" + "x" * 200 + "/", [], "t")
    assert len(long) <= 80


@pytest.mark.parametrize("key", ["incoming/Shirts/", "elsewhere/15970.jpg", "incoming/Shirts/\x07.jpg"])
def test_keys_naming_no_product_are_invalid(key: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        identify(key, "incoming/", {})
    assert raised.value.code is ErrorCode.INVALID_KEY


def _workflow(
    key: str, version: str | None = "v1", sequencer: str = "0A", time: str = "2026-11-21T03:00:00Z"
):
    return WorkflowInput(bucket="b", key=key, version_id=version, event_time=time, sequencer=sequencer)


def test_execution_names_are_deterministic_valid_and_distinct_per_version() -> None:
    long_unicode = "incoming/Shirts/" + "ü" * 300 + " shirt+1.jpg"
    names = {
        _workflow("incoming/Shirts/15970.jpg").execution_name,
        _workflow("incoming/Shirts/15970.jpg", version="v2").execution_name,
        _workflow("incoming/Shirts/15971.jpg").execution_name,
        _workflow(long_unicode).execution_name,
        _workflow("incoming/Shirts/15970.jpg", version=None, sequencer="0B").execution_name,
    }
    assert len(names) == 5
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name), name
    assert _workflow(long_unicode).execution_name == _workflow(long_unicode).execution_name


def test_order_tokens_sort_by_event_time_then_left_padded_sequencer() -> None:
    earlier = _workflow("k", sequencer="FFFF", time="2026-11-21T03:00:00Z")
    later_same_second = _workflow("k", sequencer="10000", time="2026-11-21T03:00:00Z")
    next_second = _workflow("k", sequencer="0001", time="2026-11-21T03:00:01Z")
    assert earlier.order_token < later_same_second.order_token < next_second.order_token


def test_order_tokens_compare_event_times_of_any_precision_as_instants() -> None:
    whole_second = _workflow("k", time="2026-12-01T10:17:10Z")
    later_in_that_second = _workflow("k", time="2026-12-01T10:17:10.530Z")
    next_second_with_offset = _workflow("k", time="2026-12-01T11:17:11+01:00")
    assert whole_second.order_token < later_in_that_second.order_token < next_second_with_offset.order_token
    assert whole_second.order_token.startswith("2026-12-01T10:17:10.000000Z#")


def test_a_redrive_has_its_own_name_and_orders_after_its_upload_but_before_a_newer_one() -> None:
    upload = _workflow("incoming/Shirts/" + "x" * 100 + ".jpg")
    first, second = (upload.model_copy(update={"redrive_count": n}) for n in (1, 2))
    newer = _workflow(upload.key, version="v2", time="2026-11-21T03:00:00.001Z")
    names = [upload.execution_name, first.execution_name, second.execution_name]
    assert len(set(names)) == 3
    assert first.execution_name.endswith("-r1") and first.execution_name == first.model_copy().execution_name
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name) for name in names)
    assert upload.order_token < first.order_token < second.order_token < newer.order_token
    assert [redrive_count_of(w.order_token) for w in (upload, first, second)] == [0, 1, 2]


def test_a_redrive_is_built_from_the_failed_record_alone() -> None:
    upload = _workflow(
        "incoming/Shirts/15970.jpg", sequencer="0062E99A88DC407460", time="2026-12-01T10:17:10Z"
    )
    identity = ProductIdentity(
        product_id="15970",
        category="Shirts",
        source=S3ObjectRef(bucket="b", key=upload.key, version_id="v1"),
        order_token=upload.order_token,
    )
    failed = identity.record(Status.FAILED, upload.execution_name)
    first = WorkflowInput.redrive_of(failed)
    assert (first.bucket, first.key, first.version_id, first.redrive_count) == ("b", upload.key, "v1", 1)
    assert first.order_token == upload.order_token + "#r0001"
    second = WorkflowInput.redrive_of(
        identity.model_copy(update={"order_token": first.order_token}).record(
            Status.FAILED, first.execution_name
        )
    )
    assert second.redrive_count == 2 and second.order_token > first.order_token


def test_a_redrive_of_a_product_folder_runs_the_same_photo_set_again() -> None:
    from describer_rules.contracts import ImageStatus, ProductImage
    from describer_steps.states import PhotoVersion

    photos = [PhotoVersion(key=f"incoming/Shirts/P/{n}.jpg", version_id=f"v{n}", size=9) for n in (1, 2)]
    upload = WorkflowInput(
        bucket="b", key="incoming/Shirts/P/", event_time="2026-12-01T10:17:10Z", sequencer="2", photos=photos
    )
    images = [ProductImage(key=p.key, version=p.version_id, bytes=9, status=ImageStatus.USED) for p in photos]
    identity = ProductIdentity(
        product_id="P",
        category="Shirts",
        source=S3ObjectRef(bucket="b", key=photos[0].key, version_id="v1"),
        order_token=upload.order_token,
        images=images,
    )
    redrive = WorkflowInput.redrive_of(identity.record(Status.FAILED, upload.execution_name))
    assert (redrive.key, redrive.photos, redrive.redrive_count) == ("incoming/Shirts/P/", photos, 1)
    assert redrive.order_token == upload.order_token + "#r0001"
    assert redrive.execution_name != upload.execution_name and "-set-" in redrive.execution_name
