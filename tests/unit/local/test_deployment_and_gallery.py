from __future__ import annotations

from pathlib import Path

import boto3
from moto import mock_aws
from PIL import Image
from rich.console import Console

from describer.deployment import Deployment, PhotoSetRef, UploadRef, fetch_records, files_to_upload
from describer.local.demo.gallery import GalleryItem, write_gallery
from describer_aws.results_table import ResultsTable
from describer_rules.contracts import ErrorCode, LocaleContent, ProductRecord, Status


def _record(
    status: Status, version: str = "v2", updated_at: str = "2026-01-01T00:00:10.000Z", **fields: object
) -> ProductRecord:
    return ProductRecord.model_validate(
        {
            "product_id": "15970",
            "category": "Shirts",
            "status": status,
            "source_bucket": "uploads",
            "source_key": "incoming/Shirts/15970.jpg",
            "source_version": version,
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": updated_at,
            **fields,
        }
    )


def test_an_upload_is_matched_by_version_and_only_when_final() -> None:
    upload = UploadRef("v2", "2026-01-01T00:00:05.000Z")
    assert upload.is_final_record_of(_record(Status.COMPLETED))
    assert not upload.is_final_record_of(_record(Status.PROCESSING))
    assert not upload.is_final_record_of(_record(Status.COMPLETED, version="v1"))


def test_without_a_version_only_a_record_written_after_the_upload_counts() -> None:
    upload = UploadRef("v2", "2026-01-01T00:00:05.000Z")
    assert upload.is_final_record_of(_record(Status.FAILED, version="null"))
    assert not upload.is_final_record_of(
        _record(Status.FAILED, version="null", updated_at="2026-01-01T00:00:04.999Z")
    )


def test_a_directory_uploads_by_relative_path_and_a_file_by_name(tmp_path: Path) -> None:
    (tmp_path / "photos" / "Shirts").mkdir(parents=True)
    (tmp_path / "photos" / "Shirts" / "1.jpg").write_bytes(b"x")
    (tmp_path / "photos" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "2.png").write_bytes(b"x")
    found = files_to_upload([tmp_path / "photos", tmp_path / "2.png"])
    assert [suffix for _, suffix in found] == ["Shirts/1.jpg", "2.png"]


def test_the_gallery_shows_photo_attributes_description_and_error(tmp_path: Path) -> None:
    photo = tmp_path / "15970.jpg"
    Image.new("RGB", (300, 200), (20, 40, 200)).save(photo)
    completed = _record(
        Status.COMPLETED,
        attributes={"Pattern": "Striped", "Fit": "Slim Fit", "Occasion": "Party"},
        unknown_attributes=["Occasion"],
        confidence={"Pattern": 0.973, "Fit": 0.512},
        needs_review=True,
        description="A <b>bold</b> striped shirt.",
    )
    failed = _record(Status.FAILED, error_code=ErrorCode.NOT_AN_IMAGE, error_message="not a JPEG")
    page = write_gallery(
        [
            GalleryItem(completed, photo, {"Pattern": "Striped", "Fit": "Regular Fit"}),
            GalleryItem(failed, None),
        ],
        tmp_path / "gallery" / "index.html",
    ).read_text()
    assert "data:image/jpeg;base64," in page
    assert "A &lt;b&gt;bold&lt;/b&gt; striped shirt." in page
    assert "<td class=\"hit\">Striped</td><td class='confidence'>0.97</td>" in page
    assert (
        "<td class=\"miss\">Slim Fit</td><td class='confidence'>0.51</td><td class='truth'>Regular Fit</td>"
        in page
    )
    assert "<td>Party</td><td class='confidence unknown'>unknown</td>" in page
    assert page.count('<span class="review">needs review</span>') == 1  # the completed one only
    assert "NOT_AN_IMAGE" in page
    assert "1 completed, 1 failed" in page


def test_the_gallery_shows_each_locales_title_bullets_and_keywords_behind_a_switch(tmp_path: Path) -> None:
    def copy(title: str) -> LocaleContent:
        return LocaleContent(
            title=title,
            description=f"{title} description",
            bullets=[f"{title} bullet {n}" for n in range(3)],
            keywords=[f"{title} keyword {n}" for n in range(5)],
            meta_description="meta",
        )

    record = _record(Status.COMPLETED, content={"en-US": copy("Blue <shirt>"), "es-ES": copy("Camisa azul")})
    page = write_gallery([GalleryItem(record)], tmp_path / "index.html").read_text()
    assert "<body data-locale='en-US'>" in page
    assert '<option value="en-US">en-US</option><option value="es-ES">es-ES</option>' in page
    assert 'body[data-locale="es-ES"] .copy:not([data-locale="es-ES"]) { display: none; }' in page
    assert '<section class="copy" data-locale="es-ES" lang="es-ES"><h3>Camisa azul' in page
    assert "Blue &lt;shirt&gt;" in page and "<li>Camisa azul bullet 2</li>" in page
    assert '<span class="keyword">Camisa azul keyword 4</span>' in page


@mock_aws
def test_records_are_read_back_as_product_records_by_status_and_by_id() -> None:
    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    session.client("dynamodb").create_table(
        TableName="results",
        KeySchema=[{"AttributeName": "product_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "product_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table = session.resource("dynamodb").Table("results")
    for product_id, status in (("1", Status.COMPLETED), ("2", Status.FAILED), ("3", Status.PROCESSING)):
        record = _record(status, timings_ms={"total": 1234})
        table.put_item(Item={**record.model_dump(mode="json", exclude_none=True), "product_id": product_id})
    deployment = Deployment("stack", session)
    deployment.__dict__["outputs"] = {"ResultsTableName": "results"}

    failed = deployment.records(Status.FAILED)
    assert [(r.product_id, r.status) for r in failed] == [("2", Status.FAILED)]
    assert failed[0].timings_ms == {"total": 1234}
    assert len(deployment.records()) == 3
    assert sorted(fetch_records(deployment, ["1", "3", "404"])) == ["1", "3"]


def test_results_can_show_one_locale() -> None:
    from describer.deployment_commands import in_locale, records_table

    copies = {
        locale: LocaleContent(
            title=f"{locale} title",
            description=f"{locale} description",
            bullets=["a", "b", "c"],
            keywords=["k1", "k2", "k3", "k4", "k5"],
            meta_description="m",
        )
        for locale in ("en-US", "es-ES")
    }
    usage = {"en-US": {"input": 300, "output": 200}, "es-ES": {"input": 310, "output": 220}}
    record = _record(Status.COMPLETED, description="en-US description", content=copies, token_usage=usage)
    spanish = in_locale(record, "es-ES")
    assert list(spanish.content) == ["es-ES"] and spanish.description == "es-ES description"
    assert list(spanish.token_usage) == ["es-ES"]
    assert in_locale(record, None) == record
    assert in_locale(record, "de-DE").content == {}
    console = Console(width=200, record=True)
    console.print(records_table([spanish], locale="es-ES"))
    shown = console.export_text()
    assert "es-ES title" in shown and "(es-ES)" in shown and "en-US title" not in shown


def test_the_demo_checks_each_records_copy_with_the_pipelines_validator() -> None:
    from describer.local.demo.run import copy_problems
    from describer.local.offline_writer.product_copy import write_copy

    attributes = {"Sleeve Length": "Long Sleeves", "Pattern": "Checked", "Colour": "Blue"}
    content = {
        locale: LocaleContent.model_validate(write_copy(attributes, "shirt", locale))
        for locale in ("es-ES", "en-US")
    }
    record = _record(
        Status.COMPLETED, attributes=attributes, content=content, description=content["en-US"].description
    )
    assert copy_problems(record) == []
    content["en-US"] = content["en-US"].model_copy(update={"title": "Blue Checked Shirt with Short Sleeves"})
    wrong = record.model_copy(update={"content": content})
    assert [problem.split(":")[:2] for problem in copy_problems(wrong)] == [
        ["en-US", " attribute_contradicted"]
    ]


@mock_aws
def test_records_needing_review_are_listed_from_the_sparse_index() -> None:
    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    dynamodb = session.client("dynamodb")
    # The table as template.yaml declares it (key, the by-review index).
    dynamodb.create_table(
        TableName="results",
        KeySchema=[{"AttributeName": "product_id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("product_id", "review", "updated_at")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-review",
                "KeySchema": [
                    {"AttributeName": "review", "KeyType": "HASH"},
                    {"AttributeName": "updated_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    table = ResultsTable("results", dynamodb)
    for product_id, needs_review, second in (("1", True, "01"), ("2", False, "02"), ("3", True, "03")):
        record = _record(
            Status.COMPLETED,
            updated_at=f"2026-01-01T00:00:{second}.000Z",
            confidence={"Fit": 0.4 if needs_review else 0.9},
            needs_review=needs_review,
            order_token=f"t{second}",
            execution_name=f"run-{product_id}",
        )
        assert table.write_if_current(record.model_copy(update={"product_id": product_id}))
    deployment = Deployment("stack", session)
    deployment.__dict__["outputs"] = {"ResultsTableName": "results", "ResultsReviewIndexName": "by-review"}

    listed = deployment.records_needing_review()
    assert [(record.product_id, record.needs_review) for record in listed] == [("3", True), ("1", True)]
    assert listed[0].confidence == {"Fit": 0.4}

    # A newer upload of product 1 that needs no review leaves the index.
    newer = _record(Status.COMPLETED, confidence={"Fit": 0.95}, order_token="t09", execution_name="run-1b")
    assert table.write_if_current(newer.model_copy(update={"product_id": "1"}))
    assert [record.product_id for record in deployment.records_needing_review()] == ["3"]


def _images(*entries: tuple[str, str, str | None]) -> list[dict[str, object]]:
    return [
        {"key": key, "version": version, "status": "skipped" if reason else "used", "reason": reason}
        for key, version, reason in entries
    ]


def test_a_photo_set_is_final_only_when_its_record_lists_exactly_those_photos() -> None:
    keys = {"incoming/Shirts/P/a.jpg": {"VersionId": "1"}, "incoming/Shirts/P/b.jpg": {"VersionId": "2"}}
    upload = PhotoSetRef.of(keys, "2026-01-01T00:00:05.000Z")
    both = _images(
        ("incoming/Shirts/P/b.jpg", "2", "IMAGE_UNDECODABLE: x"), ("incoming/Shirts/P/a.jpg", "1", None)
    )
    assert upload.is_final_record_of(_record(Status.COMPLETED, images=both))
    assert not upload.is_final_record_of(_record(Status.PROCESSING, images=both))
    assert not upload.is_final_record_of(_record(Status.COMPLETED, images=both[:1]))
    assert PhotoSetRef.of({}, "t").is_final_record_of(
        _record(Status.FAILED, error_code=ErrorCode.NO_VALID_IMAGE)
    )


def test_the_gallery_shows_every_photo_of_a_product_and_why_one_was_skipped(tmp_path: Path) -> None:
    front, broken = tmp_path / "front.jpg", tmp_path / "broken.jpg"
    Image.new("RGB", (64, 64), (20, 40, 200)).save(front)
    broken.write_bytes(b"\xff\xd8\xff broken")
    images = _images(
        ("incoming/Shirts/P/front.jpg", "1", None),
        ("incoming/Shirts/P/broken.jpg", "2", "IMAGE_UNDECODABLE: cut"),
    )
    record = _record(
        Status.COMPLETED,
        images=images,
        primary_image="incoming/Shirts/P/front.jpg",
        attributes={"Fit": "Slim Fit"},
        confidence={"Fit": 0.9},
        photos_agreed={"Fit": 1},
    )
    photos = {"incoming/Shirts/P/front.jpg": front, "incoming/Shirts/P/broken.jpg": broken}
    page = write_gallery([GalleryItem(record, photos=photos)], tmp_path / "index.html").read_text()
    assert page.count("<figure ") == 2
    assert '<figure class="skipped" title="IMAGE_UNDECODABLE: cut">' in page
    assert "broken.jpg<br><b>IMAGE_UNDECODABLE</b>" in page
    assert page.count("data:image/jpeg;base64,") == 2  # the primary photo, and its thumbnail in the strip
    assert "<span class='agreed'>1/1 photos</span>" in page
