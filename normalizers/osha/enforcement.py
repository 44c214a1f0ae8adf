"""OSHA enforcement (DOL data catalog): ``osha_violation`` rows joined to their ``osha_inspection``.

One violation per (activity_nr, citation_id). The inspection gives the establishment, its site and
NAICS code, and the open date the event date falls back to when the citation has no issuance date.
``delete_flag = D`` means the agency withdrew the citation: an SCD2 DELETE, never a live row.
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
    reject_when,
    state_code,
    unreadable,
    zip5,
)
from ventureos.schemas import LINEAGE, details_json

KEY = "activity_nr"
# The enforcement catalog has addresses, no coordinates.
ABSENT = ("latitude", "longitude")
VIOLATION_TYPES = {"S": "serious", "W": "willful", "R": "repeat", "O": "other"}
VIOLATION_MAPPED = (
    KEY, "citation_id", "delete_flag", "viol_type", "issuance_date", "current_penalty",
    "initial_penalty", "standard",
)  # fmt: skip
INSPECTION_MAPPED = (
    KEY, "estab_name", "site_address", "site_city", "site_state", "site_zip", "naics_code", "open_date",
)  # fmt: skip
# Inspection fields kept in violation_details next to the violation's own unmapped fields.
INSPECTION_DETAILS = ("open_date", "insp_type", "insp_scope", "owner_type", "sic_code", "reporting_id")
MISSING_INSPECTION = "missing_inspection"


def _with_columns(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    return frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in missing)


def catalog_date(value: pl.Expr) -> pl.Expr:
    """The catalog's ``yyyymmdd``, or ISO (a timestamp keeps its date): two formats, not every agency's."""
    text = value.str.strip_chars()
    return pl.coalesce(
        text.str.to_date("%Y%m%d", strict=False),
        text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False),
    )


def inspection_sites(inspection: pl.DataFrame | None) -> pl.DataFrame:
    """One row per activity_nr (a re-delivered inspection keeps its last version).

    Site fields come mapped as ``insp_*`` (derived here, once per inspection rather than once per
    violation), the detail fields under their own names, plus ``insp_found``.
    """
    wanted = list(dict.fromkeys((*INSPECTION_MAPPED, *INSPECTION_DETAILS)))
    if inspection is None:
        inspection = pl.DataFrame(schema=dict.fromkeys(wanted, pl.String))
    inspection = _with_columns(inspection, tuple(wanted))
    return (
        inspection.select(wanted)
        .with_columns(blank_to_null(wanted))
        .with_columns(integral_ids([KEY]))
        .filter(pl.col(KEY).is_not_null())
        .unique(subset=KEY, keep="last", maintain_order=False)
        .select(
            KEY,
            *INSPECTION_DETAILS,
            "site_state",  # as given: kept in the details when it is no state code
            "site_zip",
            insp_estab_name=pl.col("estab_name"),
            insp_site_address=pl.col("site_address"),
            insp_city=pl.col("site_city").str.to_uppercase(),
            insp_state=state_code(pl.col("site_state")),
            insp_zip=zip5(pl.col("site_zip")),
            insp_naics=pl.col("naics_code").str.replace(r"\.0+$", ""),
            insp_open_read=catalog_date(pl.col("open_date")),
            insp_found=pl.lit(True),
        )
    )


def normalize(raw: pl.DataFrame, inspection: pl.DataFrame | None = None) -> pl.DataFrame:
    """OSHA violations joined to their inspections -> violations (``delete_flag = D`` -> is_deleted).

    ``inspection``: the ``osha_inspection`` rows of the batch's activity numbers (None: no site data).
    The contract every normalizer keeps: ``normalizers.Dataset.normalize``.
    """
    source_columns = [c for c in raw.columns if c not in LINEAGE]
    raw = _with_columns(raw.with_columns(blank_to_null(source_columns)), VIOLATION_MAPPED)
    raw = raw.with_columns(integral_ids([KEY]))
    joined = raw.join(inspection_sites(inspection), on=KEY, how="left")

    issued_read, opened_read = catalog_date(pl.col("issuance_date")), pl.col("insp_open_read")
    issued, opened = date_in_range(issued_read), date_in_range(opened_read)
    code = pl.col("viol_type").str.to_uppercase()
    violation_type = code.replace_strict(VIOLATION_TYPES, default=None, return_dtype=pl.String)
    has_inspection = pl.col("insp_found").fill_null(False)
    current_penalty, initial_penalty = money(pl.col("current_penalty")), money(pl.col("initial_penalty"))
    unmapped = [c for c in source_columns if c not in VIOLATION_MAPPED]
    details = [*unmapped, *(c for c in INSPECTION_DETAILS if c not in unmapped)]

    normalized = joined.select(
        pl.concat_str(KEY, "citation_id", separator="-").alias("source_id"),
        pl.coalesce(issued, opened).alias("event_date"),
        pl.col("insp_estab_name").alias("company_name"),
        pl.col("insp_site_address").alias("address"),
        pl.col("insp_city").alias("city"),
        pl.col("insp_state").alias("state"),
        pl.col("insp_zip").alias("zip"),
        pl.col("insp_naics").alias("naics_code"),
        violation_type.alias("violation_type"),
        current_penalty.alias("penalty_amount"),
        initial_penalty.alias("initial_penalty"),
        pl.col("standard").alias("description"),
        details_json(
            details,
            unread={
                "issuance_date": issued,
                "viol_type": violation_type,
                "current_penalty": current_penalty,
                "initial_penalty": initial_penalty,
                "site_state": pl.col("insp_state"),
                "site_zip": pl.col("insp_zip"),
            },
        ).alias("violation_details"),
        quality_flags(
            {
                "event_date_fallback": issued.is_null() & opened.is_not_null(),
                MISSING_INSPECTION: ~has_inspection,
                "unknown_violation_type": violation_type.is_null(),
                "invalid_penalty": unreadable(pl.col("current_penalty"), current_penalty)
                | unreadable(pl.col("initial_penalty"), initial_penalty),
                **date_range_flags(issued_read, opened_read),
            }
        ).alias("quality_issues"),
        (pl.col("delete_flag").str.to_uppercase() == "D").fill_null(False).alias("is_deleted"),
        reject_when(
            {
                "missing activity_nr": pl.col(KEY).is_null(),
                "missing citation_id": pl.col("citation_id").is_null(),
                "missing event date (no readable issuance_date or inspection open_date)": issued.is_null()
                & opened.is_null(),
            }
        ).alias("reject_reason"),
        *LINEAGE,
    )
    return conform(normalized)


def recalled_inspections(current: pl.DataFrame) -> pl.DataFrame:
    """``osha_inspection`` rows rebuilt from current violations that had theirs (``normalizers.Recall``).

    Everything ``normalize`` takes from an inspection is in the violation: the site in its columns, the
    detail fields and a state or ZIP it could not read in ``violation_details`` under the source's names.
    Violations of one inspection that disagree (it was re-delivered with only some of them) get the
    newest version's: ordered by ``valid_from``, the last row of an activity number wins the join.
    """
    detail = pl.col("violation_details").str.json_path_match
    return current.sort("valid_from", maintain_order=True).select(
        pl.col("source_id").str.split("-").list.first().alias(KEY),
        pl.col("company_name").alias("estab_name"),
        pl.col("address").alias("site_address"),
        pl.col("city").alias("site_city"),
        pl.coalesce(detail("$.site_state"), pl.col("state")).alias("site_state"),
        pl.coalesce(detail("$.site_zip"), pl.col("zip")).alias("site_zip"),
        pl.col("naics_code"),
        *(detail(f"$.{name}").alias(name) for name in INSPECTION_DETAILS),
    )
