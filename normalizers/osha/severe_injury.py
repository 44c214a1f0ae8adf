"""OSHA Severe Injury Reports (one row per reported amputation, loss of an eye or hospitalization)."""

from __future__ import annotations

import polars as pl

from normalizers.common import (
    EARLIEST_DATE,
    blank_to_null,
    conform,
    date_in_range,
    flag,
    integral_ids,
    quality_flags,
    read_date,
    reject_when,
    state_code,
    zip5,
)
from ventureos.schemas import LINEAGE, details_json

MAPPED = (
    "ID", "EventDate", "Employer", "Address1", "Address2", "City", "State", "Zip", "Latitude",
    "Longitude", "Primary NAICS", "Final Narrative",
)  # fmt: skip
# Flags that decide the violation type, most severe first. Older exports lack "Loss of Eye".
SEVERITY_FLAGS = {"Amputation": "amputation", "Loss of Eye": "loss_of_eye", "Hospitalized": "hospitalization"}


def normalize(raw: pl.DataFrame) -> pl.DataFrame:
    """OSHA severe-injury reports -> violations (one per report; the event date is required).

    The contract every normalizer keeps: ``normalizers.Dataset.normalize``.
    """
    source_columns = [c for c in raw.columns if c not in LINEAGE]
    raw = raw.with_columns(blank_to_null(source_columns))
    for column in (*MAPPED, *SEVERITY_FLAGS):
        if column not in raw.columns:
            raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    raw = raw.with_columns(integral_ids(["ID"]))

    event_read = read_date(pl.col("EventDate"))
    event_date = date_in_range(event_read)
    latitude = pl.col("Latitude").cast(pl.Float64, strict=False)
    longitude = pl.col("Longitude").cast(pl.Float64, strict=False)
    violation_type = pl.lit("severe_injury")
    for column, kind in reversed(SEVERITY_FLAGS.items()):
        violation_type = pl.when(flag(pl.col(column))).then(pl.lit(kind)).otherwise(violation_type)
    unmapped = [c for c in source_columns if c not in MAPPED]
    state, zip_code = state_code(pl.col("State")), zip5(pl.col("Zip"))
    unread = {
        "EventDate": event_date,
        "State": state,
        "Zip": zip_code,
        "Latitude": latitude,
        "Longitude": longitude,
    }

    normalized = raw.select(
        pl.col("ID").alias("source_id"),
        event_date.alias("event_date"),
        pl.col("Employer").alias("company_name"),
        pl.concat_str("Address1", "Address2", separator=", ", ignore_nulls=True).alias("address"),
        pl.col("City").str.to_uppercase().alias("city"),
        state.alias("state"),
        zip_code.alias("zip"),
        latitude.alias("latitude"),
        longitude.alias("longitude"),
        pl.col("Primary NAICS").str.replace(r"\.0+$", "").alias("naics_code"),
        violation_type.alias("violation_type"),
        pl.col("Final Narrative").alias("description"),
        details_json(unmapped, unread).alias("violation_details"),
        quality_flags({}).alias("quality_issues"),
        pl.lit(False).alias("is_deleted"),
        reject_when(
            {
                "missing ID": pl.col("ID").is_null(),
                "missing event date": pl.col("EventDate").is_null(),
                f"event date before {EARLIEST_DATE}": event_read < pl.lit(EARLIEST_DATE),
                "event date more than a year ahead": event_read.is_not_null() & event_date.is_null(),
                "unparseable event date": event_date.is_null(),
            }
        ).alias("reject_reason"),
        *LINEAGE,
    )
    return conform(normalized)
