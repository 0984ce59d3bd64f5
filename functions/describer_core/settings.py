"""The pipeline Lambdas' configuration: environment variables read into pydantic models.

Each handler reads only the settings it needs, so a missing variable fails at cold start with a
clear validation error instead of halfway through a run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, Field

SettingsT = TypeVar("SettingsT", bound=BaseModel)


def load_settings(model: type[SettingsT], environ: Mapping[str, str] | None = None) -> SettingsT:
    """Fill ``model`` from environment variables named like its fields, upper-cased."""
    source = os.environ if environ is None else environ
    values = {name: source[name.upper()] for name in model.model_fields if name.upper() in source}
    return model.model_validate(values)


class TableSettings(BaseModel):
    results_table_name: str = Field(min_length=3)


class ImageSettings(BaseModel):
    max_image_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)


class UploadSettings(BaseModel):
    upload_prefix: str = "incoming/"


class MapSettings(BaseModel):
    map_concurrency: int = Field(
        ge=1, description="Questions in flight per product (template MapConcurrency)"
    )


class PrepareSettings(TableSettings, ImageSettings, UploadSettings, MapSettings):
    pass


class FailureSettings(TableSettings, UploadSettings):
    pass


class EndpointSettings(BaseModel):
    endpoint_name: str = Field(min_length=1)


class DescriptionSettings(BaseModel):
    bedrock_model_id: str = Field(min_length=1)
    description_temperature: float = Field(default=0.1, ge=0.0, le=1.0)
    description_max_tokens: int = Field(default=400, ge=50, le=4096)


class StarterSettings(BaseModel):
    state_machine_arn: str = Field(min_length=1)
    max_running_executions: int = Field(default=20, ge=1)
    admission_queue_url: str = Field(min_length=1)
