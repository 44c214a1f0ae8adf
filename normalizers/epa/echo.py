"""EPA ECHO facility exporter (``ECHO_EXPORTER.csv``: one row per facility, 134 columns).

A facility with a penalty is a violation record: its last penalty (``FAC_LAST_PENALTY_AMT`` on
``FAC_DATE_LAST_PENALTY``; ``FAC_TOTAL_PENALTIES`` covers only five years, so it is the fallback). The
source id is the registry id plus the penalty date, so a later penalty is a new violation and the
earlier one stays. A facility without any penalty is not a violation: it is quarantined with the
reason ``no penalty: not a violation``, so the reconciliation still accounts for every row. A penalty
the source gives but that cannot be read (``-5000``, ``NaN``) is a violation flagged ``invalid_penalty``.
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
from ventureos.schemas import LINEAGE, details_json

NO_PENALTY = "no penalty: not a violation"
MAPPED = (
    "REGISTRY_ID", "FAC_NAME", "FAC_STREET", "FAC_CITY", "FAC_STATE", "FAC_ZIP", "FAC_LAT", "FAC_LONG",
    "FAC_DATE_LAST_PENALTY", "FAC_LAST_PENALTY_AMT",
)  # fmt: skip
COLUMNS = (*MAPPED, "FAC_TOTAL_PENALTIES", "FAC_PENALTY_COUNT", "FAC_NAICS_CODES", "FEC_LAST_CASE_DATE")


def normalize(raw: pl.DataFrame) -> pl.DataFrame:
    """ECHO facilities -> violations: a facility's last penalty; no penalty is a reject.

    The contract every normalizer keeps: ``normalizers.Dataset.normalize``.
    """
    source_columns = [c for c in raw.columns if c not in LINEAGE]
    raw = raw.with_columns(blank_to_null(source_columns))
    for column in COLUMNS:
        if column not in raw.columns:
            raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    raw = raw.with_columns(integral_ids(["REGISTRY_ID"]))

    last_amount = money(pl.col("FAC_LAST_PENALTY_AMT"))
    total = money(pl.col("FAC_TOTAL_PENALTIES"))
    penalty = pl.when(last_amount > 0).then(last_amount).when(total > 0).then(total)
    penalty_read, case_read = (
        read_date(pl.col("FAC_DATE_LAST_PENALTY")),
        read_date(pl.col("FEC_LAST_CASE_DATE")),
    )
    penalty_date, case_date = date_in_range(penalty_read), date_in_range(case_read)
    # An amount the source gives but that cannot be read (-5000, 1e30, NaN) is not "no penalty".
    unreadable_penalty = unreadable(pl.col("FAC_LAST_PENALTY_AMT"), last_amount) | unreadable(
        pl.col("FAC_TOTAL_PENALTIES"), total
    )
    source_id = pl.concat_str(
        pl.col("REGISTRY_ID"), penalty_date.dt.strftime("%Y%m%d").fill_null("undated"), separator=":"
    )

    state, zip_code = state_code(pl.col("FAC_STATE")), zip5(pl.col("FAC_ZIP"))
    latitude, longitude = (pl.col(c).cast(pl.Float64, strict=False) for c in ("FAC_LAT", "FAC_LONG"))
    unread = {
        "FAC_DATE_LAST_PENALTY": penalty_date, "FAC_LAST_PENALTY_AMT": last_amount, "FAC_STATE": state,
        "FAC_ZIP": zip_code, "FAC_LAT": latitude, "FAC_LONG": longitude,
    }  # fmt: skip

    normalized = raw.select(
        source_id.alias("source_id"),
        pl.coalesce(penalty_date, case_date).alias("event_date"),
        pl.col("FAC_NAME").alias("company_name"),
        pl.col("FAC_STREET").alias("address"),
        pl.col("FAC_CITY").str.to_uppercase().alias("city"),
        state.alias("state"),
        zip_code.alias("zip"),
        latitude.alias("latitude"),
        longitude.alias("longitude"),
        # The exporter lists every program's NAICS codes in no set order: the first is kept here,
        # all of them stay in violation_details (FAC_NAICS_CODES).
        pl.col("FAC_NAICS_CODES").str.extract(r"^(\d+)").alias("naics_code"),
        pl.lit("environmental_penalty").alias("violation_type"),
        penalty.alias("penalty_amount"),
        pl.concat_str(
            pl.lit("EPA penalty at facility "),
            pl.col("REGISTRY_ID"),
            pl.lit("; penalties in the last 5 years: ") + pl.col("FAC_PENALTY_COUNT").fill_null("0"),
            pl.lit(", total $") + pl.col("FAC_TOTAL_PENALTIES").fill_null("0"),
        ).alias("description"),
        details_json([c for c in source_columns if c not in MAPPED], unread).alias("violation_details"),
        quality_flags(
            {
                "event_date_fallback": penalty_date.is_null() & case_date.is_not_null(),
                "missing_event_date": penalty_date.is_null() & case_date.is_null(),
                "invalid_penalty": unreadable_penalty,
                **date_range_flags(penalty_read, case_read),
            }
        ).alias("quality_issues"),
        pl.lit(False).alias("is_deleted"),
        reject_when(
            {
                NO_PENALTY: penalty.is_null() & ~unreadable_penalty,
                "missing REGISTRY_ID": pl.col("REGISTRY_ID").is_null(),
            }
        ).alias("reject_reason"),
        *LINEAGE,
    )
    return conform(normalized)
