"""Several photos per product: wait until a product folder has settled, then run once over its photo set.

S3 sends one event per photo and none when a folder is "complete", so the starter waits for the
folder to be quiet. An "Object Created" or "Object Deleted" event for a key in a product folder
(``keys.product_folder``) does not start a run: it becomes a *settle request* for the folder, sent
back onto the admission queue with SQS's per-message ``DelaySeconds`` = ``PhotoSettleSeconds``.
When a settle request comes back the starter lists the folder's versions (``ListObjectVersions``):

- a version or delete marker younger than ``PhotoSettleSeconds``: not settled; the request goes
  back onto the queue, delayed by the rest of the window;
- settled: the folder's newest versions are the photo set, and the run is started through the same
  admission limit as any upload, named from the set (``keys.photo_set_execution_name``: bucket,
  folder, every key and version, and the run's order token). Every event of one burst of photos
  (and every redelivery) reaches the same settled listing, so they start one run; a photo added or
  deleted later changes the listing and starts a new run, whose order token is larger, so the newest
  set wins the record as the newest version does.

The order token never goes backwards. Its time is the later of the listing's newest change and,
for a request sent by a removal for good, the removal's time (``SettleRequest.event_time``); its
tie-break is the listing's count of versions and delete markers. The listing alone could go back:
deleting a version for good, or removing a delete marker, takes the newest change (and one entry)
out of it. Every other change stays in the listing and only moves its newest change or count
forward. A removal for good sends an "Object Deleted" event ("Permanently Deleted") whose time the
settle request carries, and the folder settles only once quiet for ``PhotoSettleSeconds`` (at least
``MIN_QUIET_S``) after it, so its run's token is later than any run's whose listing was read before
it (docs/pipeline.md "Photo sets' order"). Upload events carry no time: theirs can be a second or
more after the version's LastModified, so the requests of one burst would name different runs.
S3's sequencer is not carried: sequencers order the changes of one key only, not of a folder.

Why SQS delays and not a Step Functions Wait: the wait costs nothing while it lasts (no execution,
no state transitions, no running execution counted against ``MaxRunningExecutions``), the admission
limit stays in front of the model for the settled run, and duplicate events are absorbed by the
deterministic name exactly as for single uploads. The price is one extra SQS message and one
listing per event, and a product is described ``PhotoSettleSeconds`` after its last photo.
The listing needs a versioned bucket (the template's is): delete markers are what move the listing
forward when a photo is deleted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from describer_rules.keys import key_candidates, product_folder
from describer_steps.states import ObjectCreatedEvent, PhotoVersion, WorkflowInput

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambdas never import them
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

# SQS's longest per-message delay.
MAX_DELAY_S = 900
# The least quiet time before a folder settles, whatever PhotoSettleSeconds: event times and
# LastModified are whole seconds, so a change after a listing was read then has a later second.
MIN_QUIET_S = 1
# Photos named in one run's input (the Step Functions input limit is 256 KB); past MaxPhotosPerProduct
# they are listed in the record as skipped, so more than this few are not worth carrying.
MAX_LISTED_PHOTOS = 100


class SettleRequest(BaseModel):
    """Describe this product folder once it has been quiet for the settle window."""

    bucket: str
    folder: str = Field(min_length=1, description="<prefix><Category>/<product id>/")
    # None but for a removal for good (and for requests sent before event times were carried).
    event_time: datetime | None = Field(
        default=None,
        description="When the version or delete marker that this request is about was removed for good",
    )


class SettleMessage(BaseModel):
    """The admission-queue message of a settle request."""

    settle: SettleRequest


class FolderListing(BaseModel):
    photos: list[PhotoVersion] = Field(description="Newest version of every photo, in key order")
    newest: datetime | None = Field(description="The latest version or delete marker under the folder")
    entries: int = Field(ge=0, description="Versions and delete markers listed")


def list_folder(s3_client: S3Client, bucket: str, folder: str) -> FolderListing:
    """Every version and delete marker under ``folder``; the photos are the current versions."""
    photos: list[PhotoVersion] = []
    newest: datetime | None = None
    entries = 0
    for page in s3_client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=folder):
        changes = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        entries += len(changes)
        for change in changes:
            modified = change["LastModified"]
            newest = modified if newest is None or modified > newest else newest
        for version in page.get("Versions", []):
            if version.get("IsLatest") and not version["Key"].endswith("/"):
                photos.append(
                    PhotoVersion(
                        key=version["Key"], version_id=version.get("VersionId"), size=version.get("Size")
                    )
                )
    photos.sort(key=lambda photo: photo.key)
    return FolderListing(photos=photos[:MAX_LISTED_PHOTOS], newest=newest, entries=entries)


def latest_change(request: SettleRequest, listing: FolderListing) -> datetime | None:
    """The later of the listing's newest change and the request's event: a change the listing no
    longer shows (a version deleted for good, a delete marker removed) still happened then."""
    times = [moment.astimezone(UTC) for moment in (listing.newest, request.event_time) if moment is not None]
    return max(times, default=None)


def set_workflow(request: SettleRequest, listing: FolderListing) -> WorkflowInput:
    """The run over a settled listing: ``key`` is the folder; the order token's time is the latest
    change (``latest_change``), its tie-break the listing's count of versions and delete markers."""
    newest = latest_change(request, listing) or datetime(1970, 1, 1, tzinfo=UTC)
    return WorkflowInput(
        bucket=request.bucket,
        key=request.folder,
        event_time=newest.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        sequencer=str(listing.entries),
        photos=listing.photos,
    )


class PhotoSets:
    """The starter's side of product folders: which events are about one, and when one has settled."""

    def __init__(
        self,
        s3_client: S3Client,
        sqs_client: SQSClient,
        queue_url: str,
        settle_seconds: int,
        key_prefixes: tuple[str, ...],
        is_category: Callable[[str], bool],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._s3, self._sqs, self._queue_url = s3_client, sqs_client, queue_url
        self.settle_seconds = settle_seconds
        self._prefixes, self._is_category, self._clock = key_prefixes, is_category, clock

    def folder_of(self, event: ObjectCreatedEvent) -> SettleRequest | None:
        """The settle request for an event's product folder; None for a one-photo key."""
        key = key_candidates(event.detail.object.key)[0]
        if not any(key.startswith(prefix) for prefix in self._prefixes):
            return None
        folder = product_folder(key, self._prefixes, self._is_category)
        if folder is None:
            return None
        # Only a removal for good carries its time: every other change stays in the listing, and
        # upload events' times (a second or more after LastModified) would split one burst's runs.
        event_time = event.time if event.removed_for_good else None
        return SettleRequest.model_validate(
            {"bucket": event.detail.bucket.name, "folder": folder, "event_time": event_time}
        )

    def schedule(self, request: SettleRequest, delay_s: int) -> None:
        """Send the settle request back onto the admission queue, ``delay_s`` from now."""
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=json.dumps({"settle": request.model_dump(mode="json", exclude_none=True)}),
            DelaySeconds=max(0, min(MAX_DELAY_S, delay_s)),
        )

    def settled(self, request: SettleRequest) -> WorkflowInput | int:
        """The run over the folder's photo set once settled; else the seconds still to wait."""
        listing = list_folder(self._s3, request.bucket, request.folder)
        latest = latest_change(request, listing)
        if latest is not None:
            quiet_s = (self._clock() - latest).total_seconds()
            window = max(self.settle_seconds, MIN_QUIET_S)
            if quiet_s < window:
                return max(1, math.ceil(window - quiet_s))
        return set_workflow(request, listing)
