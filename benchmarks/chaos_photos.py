"""Products with several photos in ``make chaos``: product folders uploaded among the single photos.

Each folder's photos go up in the same burst; one folder gets another photo while its first run may
be under way (the newer photo set must win), and some of the folders' upload events are delivered
again, once during the runs and once late. Judged per photo set: completed (the record lists exactly
the newest set, COMPLETED; an older set's run ended without failing), failed, stuck; duplicate
executions (more than one run for one photo set); wrong versions (a record not listing its folder's
newest set).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from describer.deployment import Deployment, PhotoSetRef
from describer.local.samples import PhotoFolder
from describer_aws.results_table import utc_now
from describer_rules.contracts import ProductRecord, Status
from describer_steps.states import WorkflowInput

_ENDED = {"SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"}


@dataclass
class FolderUpload:
    folder: PhotoFolder
    ref: PhotoSetRef
    superseded: bool = False


def upload_folder(deployment: Deployment, folder: PhotoFolder) -> FolderUpload:
    uploaded_at = utc_now()
    responses = {deployment.upload_prefix + key: deployment.upload(path, key) for path, key in folder.files()}
    return FolderUpload(folder, PhotoSetRef.of(responses, uploaded_at))


def add_photo(deployment: Deployment, earlier: FolderUpload, photo: Path) -> FolderUpload:
    """Another photo in the folder: a newer photo set of the same product."""
    name = f"9-added{photo.suffix}"
    target = photo.with_name(f"{earlier.folder.product_id}-{name}")
    shutil.copyfile(photo, target)
    uploaded_at = utc_now()
    response = deployment.upload(target, f"{earlier.folder.folder}{name}")
    photos = dict(earlier.ref.photos) | {
        f"{deployment.upload_prefix}{earlier.folder.folder}{name}": str(response.get("VersionId") or "null")
    }
    earlier.superseded = True
    ref = PhotoSetRef.of({key: {"VersionId": version} for key, version in photos.items()}, uploaded_at)
    return FolderUpload(earlier.folder, ref)


def set_executions(
    deployment: Deployment, product_ids: set[str]
) -> dict[tuple[tuple[str, str], ...], list[Any]]:
    """Every photo-set execution of these products, by the photo set (key, version) it ran over."""
    sfn = deployment.client("stepfunctions")
    found: dict[tuple[tuple[str, str], ...], list[Any]] = {}
    for page in sfn.get_paginator("list_executions").paginate(
        stateMachineArn=deployment.outputs["StateMachineArn"]
    ):
        for run in page["executions"]:
            if run["name"].split("-set-")[0] not in product_ids or "-set-" not in run["name"]:
                continue
            workflow = WorkflowInput.model_validate_json(
                sfn.describe_execution(executionArn=run["executionArn"])["input"]
            )
            photos = tuple(sorted((p.key, p.version_id or "null") for p in workflow.photos or []))
            found.setdefault(photos, []).append(run)
    return found


@dataclass
class FolderVerdict:
    outcomes: list[str]  # per photo set uploaded: completed / failed / stuck
    duplicates: int
    wrong: list[str]  # product ids whose record does not list the newest set


def judge_folders(
    deployment: Deployment, uploads: list[FolderUpload], records: dict[str, ProductRecord]
) -> FolderVerdict:
    runs_by_set = set_executions(deployment, {upload.folder.product_id for upload in uploads})
    outcomes, wrong = [], []
    for upload in uploads:
        runs = runs_by_set.get(upload.ref.photos, [])
        record = records.get(upload.folder.product_id)
        if any(run["status"] not in _ENDED for run in runs):
            outcomes.append("stuck")
        elif upload.superseded:  # no run at all is fine: the newer photo arrived before it settled
            outcomes.append("completed" if all(run["status"] == "SUCCEEDED" for run in runs) else "failed")
        elif not runs:
            outcomes.append("stuck")
        elif record is None or not upload.ref.is_final_record_of(record):
            outcomes.append("stuck")
            wrong.append(upload.folder.product_id)
        else:
            outcomes.append("completed" if record.status == Status.COMPLETED else "failed")
    duplicates = sum(max(0, len(runs) - 1) for runs in runs_by_set.values())
    return FolderVerdict(outcomes, duplicates, sorted(set(wrong)))
