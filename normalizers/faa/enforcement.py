"""FAA Enforcement Action Reports (quarterly PDFs flattened to rows; see shared/samples/faa/README.md).

One row is one action of a case; a case number repeats on up to four rows, so the source id adds the
action and the sanction to the case number. ``SANCTION AMOUNT`` is money only when ``SANCTION`` is
DOLLARS (it counts days when DAYS); certificate actions are violations without a penalty. Words split
by the PDF extraction (``CONSOLIDATE D CASE``) and known typos are repaired before categorizing.
Individuals (entity type airman/individual) are kept and flagged ``individual`` (no company slug).
"""

from __future__ import annotations

import polars as pl

from normalizers.common import (
    blank_to_null,
    conform,
    date_in_range,
    date_range_flags,
    money,
    quality_flags,
    read_date,
    reject_when,
    unreadable,
)
from ventureos.entities import slugify
from ventureos.schemas import LINEAGE, details_json

MAPPED = ("CASE NUMBER", "NAME", "DATE KNOWN", "ACTION")
COLUMNS = (*MAPPED, "ENTITY TYPE", "SANCTION AMOUNT", "SANCTION", "CASE TYPE", "CLOSED DATE")
CATEGORICAL = ("ENTITY TYPE", "ACTION", "SANCTION", "CASE TYPE")

# Words the PDF extraction splits at any letter (CONSOLIDA TED, REVOCATIO N, RECORDS/RPT S).
SPLIT_WORDS = (
    "CONSOLIDATED", "REVOCATION", "SUSPENSION", "INDEFINITE", "DURATION", "CERTIFICATE", "COMPLIANCE",
    "PENALTY", "COMPROMIS", "ASSESS", "SANCTION", "WAIVED", "DOLLARS", "PENDING", "MAINTENANCE",
    "RECORDS", "RPTS", "TESTING", "OPERATIONS", "CONTROL",
)  # fmt: skip
TYPOS = {
    "CVIIL": "CIVIL",
    "SHCOOL": "SCHOOL",
    "APPROVD": "APPROVED",
    "RPR": "REPAIR",
    "STN": "STA",
}
_REPAIRS = {
    f"{lead}{word[:i]} {word[i:]} ": f"{lead}{word} "
    for word in SPLIT_WORDS
    for i in range(1, len(word))
    for lead in " /"
} | {f" {typo} ": f" {fixed} " for typo, fixed in TYPOS.items()}
INDIVIDUAL_TYPES = ("AIRMAN", "INDIVIDUAL", "PILOT", "MECHANIC")
# ACTION wording -> violation type, first match wins.
ACTION_TYPES = {
    "REVOCATION": "certificate_revocation",
    "SUSPENSION": "certificate_suspension",
    "CP HMT": "hazmat_civil_penalty",
    "COMPROMIS": "civil_penalty_compromise",
    "CONSENT ORDER": "consent_order",
    "CIVIL PENALTY": "civil_penalty",
}


def repair_words(value: pl.Expr) -> pl.Expr:
    """Upper-case text with split words rejoined and known typos fixed (applied twice for neighbours)."""
    padded = pl.lit(" ") + value.str.to_uppercase().str.replace_all(r"\s+", " ") + pl.lit(" ")
    return padded.str.replace_many(_REPAIRS).str.replace_many(_REPAIRS).str.strip_chars()


def _canonical_columns(raw: pl.DataFrame) -> pl.DataFrame:
    """Report columns under their usual names whatever the case or separator (``Case_Number``)."""
    wanted = {c.replace(" ", ""): c for c in COLUMNS}
    renames = {}
    for column in raw.columns:
        key = column.strip().upper().replace("_", "").replace(" ", "")
        if key in wanted and wanted[key] not in raw.columns and wanted[key] not in renames.values():
            renames[column] = wanted[key]
    return raw.rename(renames)


def normalize(raw: pl.DataFrame) -> pl.DataFrame:
    """FAA enforcement action rows -> violations (one per case action and sanction).

    The contract every normalizer keeps: ``normalizers.Dataset.normalize``.
    """
    raw = _canonical_columns(raw)
    source_columns = [c for c in raw.columns if c not in LINEAGE]
    raw = raw.with_columns(blank_to_null(source_columns))
    for column in COLUMNS:
        if column not in raw.columns:
            raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    raw = raw.with_columns(repair_words(pl.col(c)).alias(f"_{c}") for c in CATEGORICAL)

    action, sanction = pl.col("_ACTION"), pl.col("_SANCTION")
    known_read, closed_read = read_date(pl.col("DATE KNOWN")), read_date(pl.col("CLOSED DATE"))
    known_date, closed_date = date_in_range(known_read), date_in_range(closed_read)
    violation_type = slugify(action).str.replace_all("-", "_")
    for wording, kind in reversed(ACTION_TYPES.items()):
        violation_type = (
            pl.when(action.str.contains(wording, literal=True)).then(pl.lit(kind)).otherwise(violation_type)
        )
    dollars = sanction == "DOLLARS"
    penalty = pl.when(dollars).then(money(pl.col("SANCTION AMOUNT")))
    individual = pl.col("_ENTITY TYPE").str.contains("|".join(INDIVIDUAL_TYPES))
    # One case, several actions: the action and sanction keep ids apart; an exact repeat gets its ordinal.
    action_key = pl.concat_str(
        pl.col("CASE NUMBER"),
        slugify(action).fill_null("none"),
        slugify(sanction).fill_null("none"),
        separator=":",
    )
    ordinal = pl.int_range(1, pl.len() + 1).over(action_key)
    source_id = (
        pl.when(ordinal == 1).then(action_key).otherwise(action_key + pl.lit(":") + ordinal.cast(pl.String))
    )
    nearly_empty = pl.all_horizontal(
        pl.col(c).is_null()
        for c in ("ACTION", "SANCTION", "SANCTION AMOUNT", "DATE KNOWN", "CLOSED DATE", "CASE TYPE")
    )

    normalized = raw.sort(LINEAGE[0]).select(
        source_id.alias("source_id"),
        pl.coalesce(known_date, closed_date).alias("event_date"),
        pl.col("NAME").alias("company_name"),
        violation_type.fill_null("enforcement_action").alias("violation_type"),
        penalty.alias("penalty_amount"),
        pl.concat_str(action, pl.col("_CASE TYPE"), sanction, separator="; ", ignore_nulls=True).alias(
            "description"
        ),
        details_json([c for c in source_columns if c not in MAPPED], {"DATE KNOWN": known_date}).alias(
            "violation_details"
        ),
        quality_flags(
            {
                "individual": individual.fill_null(False),
                "event_date_fallback": known_date.is_null() & closed_date.is_not_null(),
                "missing_event_date": known_date.is_null() & closed_date.is_null(),
                "invalid_penalty": dollars.fill_null(False) & unreadable(pl.col("SANCTION AMOUNT"), penalty),
                **date_range_flags(known_read, closed_read),
            }
        ).alias("quality_issues"),
        pl.lit(False).alias("is_deleted"),
        reject_when(
            {
                "missing CASE NUMBER": pl.col("CASE NUMBER").is_null(),
                "nearly empty row: no action, sanction, case type or dates": nearly_empty,
            }
        ).alias("reject_reason"),
        *LINEAGE,
    )
    return conform(normalized)
