"""The pipeline Lambdas' configuration: environment variables read into pydantic models.

Each handler reads only the settings it needs, so a missing variable fails at cold start with a
clear validation error instead of halfway through a run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, Field, field_validator

from describer_rules.content_rules import DEFAULT_TITLE_MAX_CHARS
from describer_rules.contracts import MAX_PHOTOS_PER_REQUEST, MAX_QUESTIONS_PER_REQUEST
from describer_rules.endpoint_calls import DEFAULT_QUESTIONS_PER_CALL
from describer_rules.images import ImageSettings
from describer_rules.locales import DEFAULT_LOCALE, parse_locales

SettingsT = TypeVar("SettingsT", bound=BaseModel)


def load_settings(model: type[SettingsT], environ: Mapping[str, str] | None = None) -> SettingsT:
    """Fill ``model`` from environment variables named like its fields, upper-cased."""
    source = os.environ if environ is None else environ
    values = {name: source[name.upper()] for name in model.model_fields if name.upper() in source}
    return model.model_validate(values)


class TableSettings(BaseModel):
    results_table_name: str = Field(min_length=3)


class FinalRecordSettings(TableSettings):
    """SaveResult and RecordFailure write the final record and announce it on the event bus."""

    event_bus_name: str = Field(min_length=1)


class UploadSettings(BaseModel):
    upload_prefix: str = "incoming/"
    # Where `describer backfill` reads an existing catalogue: objects there start nothing by themselves.
    backfill_prefix: str = "catalogue/"

    @property
    def key_prefixes(self) -> tuple[str, ...]:
        """Where a product's photo may live: uploads and the backfilled catalogue."""
        return (self.upload_prefix, self.backfill_prefix)


# From `make eval`'s threshold table (docs/training.md): on the demo model's held-out products, 3 % of
# the answers (right only 4 times in 10) and a fifth of the products fall below it; 0.8 would send 69 %.
DEFAULT_REVIEW_THRESHOLD = 0.6


class QuestionSettings(BaseModel):
    questions_per_call: int = Field(default=DEFAULT_QUESTIONS_PER_CALL, ge=1, le=MAX_QUESTIONS_PER_REQUEST)


class ReviewSettings(BaseModel):
    review_threshold: float = Field(default=DEFAULT_REVIEW_THRESHOLD, ge=0.0, le=1.0)


class MapSettings(BaseModel):
    map_concurrency: int = Field(
        ge=1, description="Question groups in flight per product (template MapConcurrency)"
    )


# Template MaxPhotosPerProduct: photos of one product described together; more are listed, skipped.
DEFAULT_MAX_PHOTOS_PER_PRODUCT = 10


class PhotoSettings(BaseModel):
    max_photos_per_product: int = Field(
        default=DEFAULT_MAX_PHOTOS_PER_PRODUCT, ge=1, le=MAX_PHOTOS_PER_REQUEST
    )


class PrepareSettings(
    TableSettings, ImageSettings, UploadSettings, QuestionSettings, MapSettings, ReviewSettings, PhotoSettings
):
    # The endpoint that chooses a category no key or metadata names; unset: the generic questions.
    endpoint_name: str | None = None
    endpoint_read_timeout_s: float = Field(default=65, gt=0, le=65)


class FailureSettings(FinalRecordSettings, UploadSettings):
    pass


class EndpointSettings(BaseModel):
    endpoint_name: str = Field(min_length=1)
    # SageMaker real-time endpoints answer within 60 s; a slower reply is a fault to retry.
    endpoint_read_timeout_s: float = Field(default=65, gt=0, le=65)


# Bedrock models without Converse's native structured output (outputConfig.textFormat): they are
# asked through a forced tool call instead. A model id matches an entry it starts with, after any
# cross-Region inference profile prefix ("us.", "eu.", "global." ...). The template's ToolUseModels
# parameter defaults to this list (a unit test keeps them equal).
TOOL_USE_MODELS = ("anthropic.claude-3", "anthropic.claude-instant", "meta.llama3", "mistral.mistral")


class DescriptionSettings(ReviewSettings):
    bedrock_model_id: str = Field(min_length=1)
    description_temperature: float = Field(default=0.1, ge=0.0, le=1.0)
    description_max_tokens: int = Field(default=1000, ge=50, le=4096)
    locales: list[str] = Field(default=[DEFAULT_LOCALE], description="The first is the default locale")
    title_max_chars: int = Field(default=DEFAULT_TITLE_MAX_CHARS, ge=20, le=150)
    style_guide_uri: str = ""
    tool_use_models: list[str] = Field(default=list(TOOL_USE_MODELS))
    locale_calls_in_parallel: int = Field(default=8, ge=1, le=16)

    @field_validator("locales", mode="before")
    @classmethod
    def _comma_separated_locales(cls, value: object) -> object:
        if isinstance(value, list):
            value = ",".join(str(tag) for tag in value)
        return parse_locales(value) if isinstance(value, str) else value

    @field_validator("tool_use_models", mode="before")
    @classmethod
    def _comma_separated_models(cls, value: object) -> object:
        return (
            [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value
        )

    @property
    def default_locale(self) -> str:
        return self.locales[0]


class BackfillSettings(TableSettings, UploadSettings):
    # Template RunTimeoutSeconds: a record PROCESSING much longer is stuck, and re-run; unset: never.
    run_timeout_seconds: int | None = Field(default=None, ge=60)


# Template PhotoSettleSeconds: a product folder is described once no photo arrived for this long.
# Photos of one product uploaded together (a sync of a folder, a phone app's batch) land within a few
# seconds of each other; 10 s covers that with room and keeps a product's latency near 10 s.
DEFAULT_PHOTO_SETTLE_SECONDS = 10


class StarterSettings(UploadSettings):
    photo_settle_seconds: int = Field(default=DEFAULT_PHOTO_SETTLE_SECONDS, ge=0, le=900)
    state_machine_arn: str = Field(min_length=1)
    max_running_executions: int = Field(default=20, ge=1)
    admission_queue_url: str = Field(min_length=1)
    admission_dead_letter_queue_url: str = Field(min_length=1)


class BatchCopyStoreSettings(TableSettings):
    """Where batch copy keeps its queue, inputs and outputs: a prefix of the stack's upload bucket."""

    batch_copy_bucket: str = Field(min_length=3)
    batch_copy_prefix: str = "backfill/batch-copy/"


class BatchCopySettings(BatchCopyStoreSettings, DescriptionSettings):
    """The backfill's batch copy pass: the jobs' service role, and what WriteDescription needs for the
    on-demand fallbacks and SaveResult for the records."""

    batch_copy_role_arn: str = Field(min_length=20)
    event_bus_name: str = Field(min_length=1)
