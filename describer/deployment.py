"""A deployed Product Describer stack, local or on AWS: where uploads go and where results are read.

Everything is found from the stack's outputs (``UploadBucketName``, ``UploadPrefix``,
``ResultsTableName``), so the same code uploads to and reads from the local emulator and AWS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from describer.local import stack as local_stack
from describer_aws.results_table import REVIEW_KEY, REVIEW_PENDING
from describer_rules.contracts import ProductRecord, Status

_DESERIALIZER = TypeDeserializer()


@dataclass
class Deployment:
    stack_name: str
    session: boto3.Session
    endpoint_url: str | None = None  # the local emulator; None on AWS
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def local(cls, state_dir: Path) -> Deployment:
        settings = local_stack.LocalSettings.load(state_dir)
        if settings is None or not local_stack.running(settings):
            raise LookupError(
                "the local stack is not up: run `describer local up` (or `make local-up`), "
                "or pass --stack-name/--profile for a stack on AWS"
            )
        session = boto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name=local_stack.emulator.REGION
        )
        return cls(settings.stack_name, session, settings.endpoint_url)

    @classmethod
    def on_aws(cls, stack_name: str, profile: str | None = None, region: str | None = None) -> Deployment:
        return cls(stack_name, boto3.Session(profile_name=profile, region_name=region))

    def client(self, service: str) -> Any:
        if service not in self._clients:
            # The stubs type clients per literal service name; this cache serves any service.
            session: Any = self.session
            self._clients[service] = session.client(service, endpoint_url=self.endpoint_url)
        return self._clients[service]

    @cached_property
    def outputs(self) -> dict[str, str]:
        (stack,) = self.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"]
        return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}

    @property
    def upload_bucket(self) -> str:
        return self.outputs["UploadBucketName"]

    @property
    def upload_prefix(self) -> str:
        return self.outputs["UploadPrefix"]

    @property
    def results_table(self) -> str:
        return self.outputs["ResultsTableName"]

    @property
    def event_bus(self) -> str:
        return self.outputs["EventBusName"]

    @property
    def review_index(self) -> str:
        return self.outputs["ResultsReviewIndexName"]

    def upload(self, path: Path, key: str) -> dict[str, Any]:
        """Upload one file to ``<upload prefix><key>``; returns the PutObject response."""
        response: dict[str, Any] = self.client("s3").put_object(
            Bucket=self.upload_bucket, Key=self.upload_prefix + key, Body=path.read_bytes()
        )
        return response

    def photo_set_runs(self, product_id: str, since: datetime) -> list[dict[str, Any]]:
        """The product folder's runs (named ``<product id>-set-...``) started since ``since``."""
        pages = (
            self.client("stepfunctions")
            .get_paginator("list_executions")
            .paginate(stateMachineArn=self.outputs["StateMachineArn"])
        )
        return [
            run
            for page in pages
            for run in page["executions"]
            if run["name"].startswith(f"{product_id}-set-") and run["startDate"] >= since
        ]

    def records(self, status: Status | None = None) -> list[ProductRecord]:
        """Every record of the results table (``status``: only those), ordered by product id."""
        records = [_record(item) for item in self._scan(status)]
        return sorted(records, key=lambda record: record.product_id)

    def records_needing_review(self, oldest_first: bool = False) -> list[ProductRecord]:
        """The records in the sparse review index (a Query: it holds only those), newest first by default."""
        paginator = self.client("dynamodb").get_paginator("query")
        pages = paginator.paginate(
            TableName=self.results_table,
            IndexName=self.review_index,
            KeyConditionExpression="#review = :pending",
            ExpressionAttributeNames={"#review": REVIEW_KEY},
            ExpressionAttributeValues={":pending": {"S": REVIEW_PENDING}},
            ScanIndexForward=oldest_first,
        )
        return [_record(item) for page in pages for item in page["Items"]]

    def _scan(self, status: Status | None) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {"TableName": self.results_table}
        if status is not None:
            arguments |= {
                "FilterExpression": "#status = :status",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":status": {"S": status.value}},
            }
        for page in self.client("dynamodb").get_paginator("scan").paginate(**arguments):
            yield from page["Items"]


def _record(item: dict[str, Any]) -> ProductRecord:
    # DynamoDB numbers arrive as Decimal; the record's int fields take them as they are.
    return ProductRecord.model_validate(
        {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}
    )


def files_to_upload(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """(file, key suffix) pairs: a file by its name, a directory's files by their relative paths."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found += [
                (file, file.relative_to(path).as_posix())
                for file in sorted(path.rglob("*"))
                if file.is_file() and not file.name.startswith(".")
            ]
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise FileNotFoundError(path)
    return found


def upload_all(
    deployment: Deployment,
    files: list[tuple[Path, str]],
    key_prefix: str = "",
    on_done: Callable[[Path, str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Upload each file to ``<upload prefix><key_prefix><suffix>``; returns PutObject responses by key."""
    responses = {}
    for path, suffix in files:
        key = key_prefix + suffix
        responses[key] = deployment.upload(path, key)
        if on_done is not None:
            on_done(path, key)
    return responses


FINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED})


@dataclass(frozen=True)
class UploadRef:
    """One upload of a product: the object version S3 gave it and when it was made (UTC, ISO 8601)."""

    version: str
    uploaded_at: str

    @classmethod
    def from_response(cls, response: dict[str, Any], uploaded_at: str) -> UploadRef:
        """From a PutObject or HeadObject response ("null" version on an unversioned bucket)."""
        return cls(str(response.get("VersionId") or "null"), uploaded_at)

    def is_final_record_of(self, record: ProductRecord) -> bool:
        """True when ``record`` is this upload's final record, not an earlier upload's."""
        if record.status not in FINAL_STATUSES:
            return False
        if record.source_version != "null":
            return record.source_version == self.version
        # Without a version (an event that names none), only the time tells uploads apart.
        return record.updated_at >= self.uploaded_at


@dataclass(frozen=True)
class PhotoSetRef(UploadRef):
    """The photos of a product folder as uploaded (key -> version): its final record lists exactly them."""

    photos: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, responses: Mapping[str, Mapping[str, Any]], uploaded_at: str) -> PhotoSetRef:
        """From the PutObject responses of a folder's current photos, by full key."""
        photos = tuple(sorted((key, str(r.get("VersionId") or "null")) for key, r in responses.items()))
        return cls(version=photos[0][1] if photos else "null", uploaded_at=uploaded_at, photos=photos)

    def is_final_record_of(self, record: ProductRecord) -> bool:
        listed = tuple(sorted((image.key, image.version or "null") for image in record.images))
        return record.status in FINAL_STATUSES and listed == self.photos


def fetch_records(deployment: Deployment, product_ids: Iterable[str]) -> dict[str, ProductRecord]:
    """The records of these products that exist, by product id (BatchGetItem, 100 keys at a time)."""
    found: dict[str, ProductRecord] = {}
    ids = sorted(set(product_ids))
    dynamodb = deployment.client("dynamodb")
    for start in range(0, len(ids), 100):
        request = {
            deployment.results_table: {"Keys": [{"product_id": {"S": i}} for i in ids[start : start + 100]]}
        }
        while request:
            response = dynamodb.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(deployment.results_table, []):
                record = _record(item)
                found[record.product_id] = record
            request = response.get("UnprocessedKeys") or {}
    return found


def wait_for_final_records(
    deployment: Deployment,
    uploads: dict[str, UploadRef],
    timeout_s: float,
    on_progress: Callable[[int], None] | None = None,
    poll_s: float = 0.25,
) -> dict[str, ProductRecord]:
    """Wait until every upload (by product id) has its COMPLETED or FAILED record.

    A record of an older upload of the same product does not count. Raises TimeoutError naming
    the products still without a final record.
    """
    deadline = time.monotonic() + timeout_s
    final: dict[str, ProductRecord] = {}
    while True:
        pending = [product_id for product_id in uploads if product_id not in final]
        for product_id, record in fetch_records(deployment, pending).items():
            if uploads[product_id].is_final_record_of(record):
                final[product_id] = record
        if on_progress is not None:
            on_progress(len(final))
        if len(final) == len(uploads):
            return final
        if time.monotonic() > deadline:
            still = sorted(set(uploads) - set(final))
            raise TimeoutError(
                f"{len(still)} of {len(uploads)} uploads have no final record after {timeout_s:.0f} s: "
                + ", ".join(still[:20])
            )
        time.sleep(poll_s)
