"""One typed settings object for both shapes (embedded and AWS).

Values come from ``VENTUREOS_*`` environment variables and, optionally, a TOML file named by
``VENTUREOS_CONFIG``. Anything unknown or invalid fails fast with the setting's name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "VENTUREOS_"
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"


class SettingsError(ValueError):
    """A setting is unknown or invalid; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    home: Path = Path(".ventureos")
    """Root of the embedded shape: lake/, catalog.db, warehouse/, serving.db, queue.db."""

    lake_uri: str | None = None
    """Object-store root for bronze/buffer/archive: a local path or ``s3://bucket[/prefix]``."""

    catalog_type: Literal["sql", "rest", "glue"] = "sql"
    catalog_name: str = "ventureos"
    catalog_uri: str | None = None
    """SQL: SQLAlchemy URL (default sqlite at home/catalog.db). REST: the Iceberg REST endpoint."""
    warehouse: str | None = None
    """SQL: warehouse root (default home/warehouse). REST on S3 Tables: the table bucket ARN."""
    catalog_sigv4: bool = False
    catalog_signing_name: str = "s3tables"

    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    """Points every AWS client (S3, SQS, DynamoDB, Iceberg FileIO) at a local compatible server."""
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None

    serving_backend: Literal["sqlite", "dynamodb"] = "sqlite"
    serving_prefix: str = "VentureOS"
    queue_backend: Literal["sqlite", "sqs"] = "sqlite"
    queue_name: str = "ventureos-feed"
    queue_visibility_timeout: int = Field(300, ge=1, le=43_200)
    """Seconds a received feed message stays invisible; a slow batch extends it while it works."""
    queue_max_receives: int = Field(5, ge=1, le=1000)
    """Receives after which a message moves to the dead-letter queue (``{queue_name}-dlq``)."""
    queue_wait_seconds: int = Field(5, ge=0, le=20)
    """Long polling: how long one receive waits for messages (0..20)."""
    queue_receive_concurrency: int = Field(4, ge=1, le=10)
    """Receive (and delete) calls of 10 messages in flight at once."""
    feed_max_message_bytes: int = Field(262_144, ge=1024)
    """Larger feed messages are poison (quarantined), whatever the queue accepted."""

    dataset_cadence_days: str = Field("", pattern=r"^(\s*[a-z0-9_]+/[a-z0-9_]+=\d+\s*(,|$))*$")
    """Per ``agency/dataset``, days between the source's publications (1 = expected in every daily-ingest,
    0 = no expectation), overriding the registry's defaults: ``faa/enforcement=1,epa/echo=0``."""
    freshness_grace_hours: float = Field(6.0, ge=0)
    """A dataset is stale once its last ingest is older than its cadence plus this grace."""

    batch_rows: int = 150_000
    """Rows per historical-load batch: bounds memory, not the input size."""

    snapshot_retention_days: float = 7.0
    """Iceberg maintenance expires snapshots older than this (the last ``snapshot_keep_last`` stay)."""
    snapshot_keep_last: int = 5
    compaction_small_file_bytes: int = 32 * 1024 * 1024
    """Data files below this size count as small; a partition with ``compaction_min_files`` is rewritten."""
    compaction_min_files: int = 5
    orphan_file_age_days: float = Field(3.0, gt=0)
    """Files under a table's location that no metadata references are deleted once this old (a younger
    one may belong to a commit still in flight)."""

    summarizer: Literal["embedded", "bedrock"] = "embedded"
    """What writes violation summaries: ``embedded`` (from the record's fields, no model) or ``bedrock``."""
    bedrock_model_id: str = "anthropic.claude-3-haiku-20240307-v1:0"
    """The one Bedrock model the summarizer calls (its IAM policy grants only this model)."""
    bedrock_region: str | None = None
    """Bedrock's region (default ``aws_region``)."""
    summary_daily_budget: int = Field(1000, ge=0)
    """Summaries started per UTC day, across all clients; further triggers answer 429 until midnight."""
    summary_rate_per_minute: float = Field(6.0, gt=0)
    """Summary triggers per client per minute (token bucket, bursts of ``summary_rate_burst``)."""
    summary_rate_burst: int = Field(3, ge=1)
    summary_pending_seconds: int = Field(300, ge=10)
    """A pending summary blocks another generation of it this long (then a dead worker's claim expires)."""
    api_cors_origins: str = ""
    """Origins (comma separated, e.g. ``https://oshatrail.com``) whose pages may call the API from a
    browser; none by default."""

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.batch_rows <= 0:
            raise ValueError("batch_rows must be positive")
        if self.catalog_type == "rest" and not self.catalog_uri:
            raise ValueError(f"{ENV_PREFIX}CATALOG_URI (catalog_uri) is required when catalog_type is 'rest'")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def cadence_overrides(self) -> dict[str, int]:
        """``dataset_cadence_days`` as ``agency/dataset`` -> days."""
        pairs = (item.split("=") for item in self.dataset_cadence_days.split(",") if item.strip())
        return {key.strip(): int(days) for key, days in pairs}

    @property
    def cors_origins(self) -> list[str]:
        """``api_cors_origins`` as a list (blanks dropped)."""
        return [origin.strip() for origin in self.api_cors_origins.split(",") if origin.strip()]

    # Derived locations -------------------------------------------------------------------
    @property
    def lake(self) -> str:
        return self.lake_uri or str((self.home / "lake").resolve())

    @property
    def is_s3(self) -> bool:
        return self.lake.startswith("s3://")

    @property
    def sql_catalog_uri(self) -> str:
        return self.catalog_uri or f"sqlite:///{(self.home / 'catalog.db').resolve()}"

    @property
    def warehouse_uri(self) -> str:
        return self.warehouse or str((self.home / "warehouse").resolve())

    @property
    def serving_db(self) -> Path:
        return self.home / "serving.db"

    @property
    def queue_db(self) -> Path:
        return self.home / "queue.db"

    def s3_properties(self) -> dict[str, str]:
        """pyiceberg FileIO properties for S3 (empty means: use the default AWS chain)."""
        props = {"s3.region": self.aws_region}
        if self.aws_endpoint_url:
            props["s3.endpoint"] = self.aws_endpoint_url
        if self.aws_access_key_id and self.aws_secret_access_key:
            props["s3.access-key-id"] = self.aws_access_key_id
            props["s3.secret-access-key"] = self.aws_secret_access_key
        return props

    def boto3_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"region_name": self.aws_region}
        if self.aws_endpoint_url:
            kwargs["endpoint_url"] = self.aws_endpoint_url
        if self.aws_access_key_id and self.aws_secret_access_key:
            kwargs["aws_access_key_id"] = self.aws_access_key_id
            kwargs["aws_secret_access_key"] = self.aws_secret_access_key
        return kwargs


def _unknown_environment_settings() -> list[str]:
    known = {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields} | {CONFIG_ENV}
    return sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, failing with one message that names every bad setting."""
    unknown = _unknown_environment_settings()
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
    config_file = os.environ.get(CONFIG_ENV)
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"{CONFIG_ENV}: config file not found: {config_file}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "settings"
            name = f"{ENV_PREFIX}{field.upper()}" if field in Settings.model_fields else field
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid setting(s): " + "; ".join(problems)) from None
