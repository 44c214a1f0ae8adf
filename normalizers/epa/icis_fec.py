"""EPA ICIS FE&C case files: enforcement conclusions joined to the facilities of their case.

Records are rows of ``CASE_ENFORCEMENT_CONCLUSIONS.csv`` (EPA's column names: ``ENF_CONCLUSION_ID``,
``SETTLEMENT_ENTERED_DATE``, ``FED_PENALTY_ASSESSED_AMT``, ``STATE_LOCAL_PENALTY_AMT``, ...); the lookup
``facilities`` is ``CASE_FACILITIES.csv`` (``CASE_NUMBER``, ``REGISTRY_ID``, ``FACILITY_NAME``, ...).
A case may name several facilities: the conclusion takes the first by registry id and keeps the
count and all registry ids in its details. A conclusion is a violation whether or not it carries a
penalty (penalty = federal + state/local, null when zero); one whose case has no facility in the
batch is kept and flagged ``missing_facility``.
"""

from __future__ import annotations

import polars as pl

from normalizers.common import (
    blank_to_null,
    conform,
    date_in_range,
    date_range_flags,
    integral_ids,
    money,
    quality_flags,
    read_date,
    reject_when,
    state_code,
    unreadable,
    zip5,
)
from ventureos.entities import slugify
from ventureos.schemas import LINEAGE, details_json

KEY = "CASE_NUMBER"
"""What a case conclusion and its facilities share."""
CONCLUSION_COLUMNS = (
    "ACTIVITY_ID", "CASE_NUMBER", "ENF_CONCLUSION_ID", "ENF_CONCLUSION_NMBR", "ENF_CONCLUSION_NAME",
    "SETTLEMENT_LODGED_DATE", "SETTLEMENT_ENTERED_DATE", "PRIMARY_LAW", "FED_PENALTY_ASSESSED_AMT",
    "STATE_LOCAL_PENALTY_AMT",
)  # fmt: skip
FACILITY_COLUMNS = (
    "CASE_NUMBER", "REGISTRY_ID", "FACILITY_NAME", "LOCATION_ADDRESS", "CITY", "STATE_CODE", "ZIP",
    "PRIMARY_SIC_CODE", "PRIMARY_NAICS_CODE",
)  # fmt: skip
MAPPED = ("ENF_CONCLUSION_ID", "ENF_CONCLUSION_NAME", "SETTLEMENT_ENTERED_DATE")


def _with_columns(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    missing = [pl.lit(None, dtype=pl.String).alias(c) for c in columns if c not in frame.columns]
    return frame.with_columns(missing) if missing else frame


def case_facilities(facilities: pl.DataFrame | None) -> pl.DataFrame:
    """One row per case: its first facility (by registry id), how many it names and their ids."""
    if facilities is None:
        facilities = pl.DataFrame(schema=dict.fromkeys(FACILITY_COLUMNS, pl.String))
    facilities = _with_columns(facilities, FACILITY_COLUMNS)
    facilities = facilities.select(blank_to_null(FACILITY_COLUMNS)).drop_nulls("CASE_NUMBER")
    return (
        facilities.sort("CASE_NUMBER", "REGISTRY_ID", nulls_last=True)
        .group_by("CASE_NUMBER", maintain_order=True)
        .agg(
            pl.all().first(),
            pl.len().alias("FACILITY_COUNT"),
            pl.col("REGISTRY_ID").drop_nulls().str.join(" ").alias("CASE_REGISTRY_IDS"),
        )
    )


def normalize(raw: pl.DataFrame, facilities: pl.DataFrame | None = None) -> pl.DataFrame:
    """ICIS FE&C enforcement conclusions joined to their case facilities -> violations.

    ``facilities``: the ``CASE_FACILITIES`` rows of the batch's cases (None: no facility data).
    The contract every normalizer keeps: ``normalizers.Dataset.normalize``.
    """
    source_columns = [c for c in raw.columns if c not in LINEAGE]
    raw = _with_columns(raw.with_columns(blank_to_null(source_columns)), CONCLUSION_COLUMNS)
    raw = raw.with_columns(integral_ids(["ENF_CONCLUSION_ID", "ENF_CONCLUSION_NMBR"]))
    joined = raw.join(case_facilities(facilities), on=KEY, how="left", maintain_order="left")

    entered_read, lodged_read = (
        read_date(pl.col("SETTLEMENT_ENTERED_DATE")),
        read_date(pl.col("SETTLEMENT_LODGED_DATE")),
    )
    entered, lodged = date_in_range(entered_read), date_in_range(lodged_read)
    amounts = {c: money(pl.col(c)) for c in ("FED_PENALTY_ASSESSED_AMT", "STATE_LOCAL_PENALTY_AMT")}
    penalty = pl.sum_horizontal(*amounts.values(), ignore_nulls=True)
    source_id = pl.coalesce(
        pl.col("ENF_CONCLUSION_ID"),
        pl.concat_str(pl.col("CASE_NUMBER"), pl.col("ENF_CONCLUSION_NMBR"), separator=":"),
    )
    law = slugify(pl.col("PRIMARY_LAW")).str.replace_all("-", "_")
    details = [c for c in source_columns if c not in MAPPED]
    details += ["REGISTRY_ID", "PRIMARY_SIC_CODE", "FACILITY_COUNT", "CASE_REGISTRY_IDS"]

    normalized = joined.select(
        source_id.alias("source_id"),
        pl.coalesce(entered, lodged).alias("event_date"),
        pl.col("FACILITY_NAME").alias("company_name"),
        pl.col("LOCATION_ADDRESS").alias("address"),
        pl.col("CITY").str.to_uppercase().alias("city"),
        state_code(pl.col("STATE_CODE")).alias("state"),
        zip5(pl.col("ZIP")).alias("zip"),
        pl.col("PRIMARY_NAICS_CODE").alias("naics_code"),
        pl.concat_str(law.fill_null("epa"), pl.lit("_enforcement_case")).alias("violation_type"),
        pl.when(penalty > 0).then(penalty).alias("penalty_amount"),
        pl.col("ENF_CONCLUSION_NAME").alias("description"),
        details_json(details, {"SETTLEMENT_ENTERED_DATE": entered}).alias("violation_details"),
        quality_flags(
            {
                "missing_facility": pl.col("FACILITY_COUNT").is_null(),
                "event_date_fallback": entered.is_null() & lodged.is_not_null(),
                "missing_event_date": entered.is_null() & lodged.is_null(),
                "invalid_penalty": pl.any_horizontal(unreadable(pl.col(c), a) for c, a in amounts.items()),
                **date_range_flags(entered_read, lodged_read),
            }
        ).alias("quality_issues"),
        pl.lit(False).alias("is_deleted"),
        reject_when({"missing ENF_CONCLUSION_ID and CASE_NUMBER": source_id.is_null()}).alias(
            "reject_reason"
        ),
        *LINEAGE,
    )
    return conform(normalized)
