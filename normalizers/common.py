"""Pure Polars building blocks shared by every normalizer (no I/O).

A dataset normalizer maps its raw frame (all source columns as strings, plus the lineage columns
``ROW`` and ``SOURCE_URI``) to the columns of ``NORMALIZED_SCHEMA``. ``finalize`` then adds what is
the same for every source: the deterministic ``violation_id``, the entity key, generic quality flags,
the quality score and the content hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import polars as pl
import polars_hash  # noqa: F401  (registers the stable .nchash namespace)

from ventureos.entities import resolve_companies, unreadable_name
from ventureos.schemas import ROW, SOURCE_URI

NORMALIZED_SCHEMA = pl.Schema(
    {
        "source_id": pl.String,
        "event_date": pl.Date,
        "company_name": pl.String,
        "address": pl.String,
        "city": pl.String,
        "state": pl.String,
        "zip": pl.String,
        "latitude": pl.Float64,
        "longitude": pl.Float64,
        "naics_code": pl.String,
        "violation_type": pl.String,
        "penalty_amount": pl.Decimal(18, 2),
        "initial_penalty": pl.Decimal(18, 2),
        "description": pl.String,
        "violation_details": pl.String,
        "quality_issues": pl.List(pl.String),
        # True when the source says the violation no longer exists (SCD2 DELETE).
        "is_deleted": pl.Boolean,
        # Why the record cannot become a violation; null when it can.
        "reject_reason": pl.String,
        ROW: pl.UInt32,
        SOURCE_URI: pl.String,
    }
)

# Content that defines a version of a violation: a change in any of these is an SCD2 update.
HASHED_COLUMNS = (
    "source_id", "event_date", "company_name", "address", "city", "state", "zip", "latitude",
    "longitude", "naics_code", "violation_type", "penalty_amount", "initial_penalty", "description",
    "violation_details", "is_deleted",
)  # fmt: skip

# How much each quality problem costs the record's quality score (1.0 = no problems).
QUALITY_WEIGHTS = {
    "missing_company": 0.3,
    "unknown_state": 0.2,
    "missing_coordinates": 0.1,
    "invalid_zip": 0.1,
    "missing_city": 0.1,
    "missing_naics": 0.05,
    "event_date_fallback": 0.1,
}
DEFAULT_QUALITY_WEIGHT = 0.1

USPS_STATES = {
    "ALABAMA": "AL", "ALASKA": "AK", "ARIZONA": "AZ", "ARKANSAS": "AR", "CALIFORNIA": "CA",
    "COLORADO": "CO", "CONNECTICUT": "CT", "DELAWARE": "DE", "DISTRICT OF COLUMBIA": "DC",
    "FLORIDA": "FL", "GEORGIA": "GA", "HAWAII": "HI", "IDAHO": "ID", "ILLINOIS": "IL", "INDIANA": "IN",
    "IOWA": "IA", "KANSAS": "KS", "KENTUCKY": "KY", "LOUISIANA": "LA", "MAINE": "ME", "MARYLAND": "MD",
    "MASSACHUSETTS": "MA", "MICHIGAN": "MI", "MINNESOTA": "MN", "MISSISSIPPI": "MS", "MISSOURI": "MO",
    "MONTANA": "MT", "NEBRASKA": "NE", "NEVADA": "NV", "NEW HAMPSHIRE": "NH", "NEW JERSEY": "NJ",
    "NEW MEXICO": "NM", "NEW YORK": "NY", "NORTH CAROLINA": "NC", "NORTH DAKOTA": "ND", "OHIO": "OH",
    "OKLAHOMA": "OK", "OREGON": "OR", "PENNSYLVANIA": "PA", "RHODE ISLAND": "RI",
    "SOUTH CAROLINA": "SC", "SOUTH DAKOTA": "SD", "TENNESSEE": "TN", "TEXAS": "TX", "UTAH": "UT",
    "VERMONT": "VT", "VIRGINIA": "VA", "WASHINGTON": "WA", "WEST VIRGINIA": "WV", "WISCONSIN": "WI",
    "WYOMING": "WY",
    # Territories and freely associated states that agencies report on.
    "AMERICAN SAMOA": "AS", "GUAM": "GU", "NORTHERN MARIANA ISLANDS": "MP", "PUERTO RICO": "PR",
    "VIRGIN ISLANDS": "VI", "U.S. VIRGIN ISLANDS": "VI", "US VIRGIN ISLANDS": "VI",
    "UNITED STATES MINOR OUTLYING ISLANDS": "UM", "FEDERATED STATES OF MICRONESIA": "FM",
    "MARSHALL ISLANDS": "MH", "PALAU": "PW",
}  # fmt: skip
USPS_CODES = sorted(set(USPS_STATES.values()))

# Each format only applies to text of its own shape: chrono would read the "06" of "6/19/06" as year 6.
TWO_DIGIT_YEAR_PIVOT = 1950
DATE_FORMATS = {
    r"^\d{1,2}/\d{1,2}/\d{4}$": "%m/%d/%Y",
    r"^\d{1,2}/\d{1,2}/\d{2}$": "%m/%d/%y",
    r"^\d{4}-\d{1,2}-\d{1,2}$": "%Y-%m-%d",
    r"^\d{8}$": "%Y%m%d",
    r"^\d{1,2}-[A-Za-z]{3}-\d{4}$": "%d-%b-%Y",
    r"^\d{1,2}-[A-Za-z]{3}-\d{2}$": "%d-%b-%y",
}


# A date outside EARLIEST_DATE .. a year after the run is a misreading or a placeholder, not an event
# (``1/1/0000`` has no Python date and failed the Iceberg statistics of a whole day's commit;
# ``12/31/9999`` means "unknown"): the column is null, the source's text stays in violation_details,
# and the record is flagged ``invalid_date`` or ``future_date`` (or rejected where the date is required).
EARLIEST_DATE = date(1900, 1, 1)
FUTURE_DAYS = 366


def latest_date() -> date:
    """The latest date taken as read: a year after today (a hearing can be scheduled ahead)."""
    return date.today() + timedelta(days=FUTURE_DAYS)


# The largest penalty taken as read, in dollars: decimal(18, 2) holds less than 1e16 and no agency has
# assessed a trillion; a larger amount is a unit or parsing error. A penalty is never negative.
MAX_PENALTY = 10**12


def blank_to_null(columns: Iterable[str]) -> list[pl.Expr]:
    """Trimmed strings, with blank and whitespace-only values as null (sources mix both)."""
    trimmed = [pl.col(c).str.strip_chars() for c in columns]
    return [pl.when(t != "").then(t).alias(c) for t, c in zip(trimmed, columns, strict=True)]


def integral_ids(columns: Iterable[str]) -> list[pl.Expr]:
    """Numeric source ids as integer text: a JSON number ``9000092.0`` is the CSV's ``9000092``, not
    another violation. Only for ids that are numbers in the source (a case number stays as given)."""
    return [pl.col(c).str.replace(r"^(\d+)\.0+$", "${1}").alias(c) for c in columns]


def date_in_range(day: pl.Expr) -> pl.Expr:
    """The date, or null when it is before EARLIEST_DATE or after ``latest_date()``."""
    return pl.when(day.is_between(pl.lit(EARLIEST_DATE), pl.lit(latest_date()))).then(day)


def date_range_flags(*days: pl.Expr) -> dict[str, pl.Expr]:
    """Quality checks of source dates as read (``read_date``): ``invalid_date`` for one before
    EARLIEST_DATE, ``future_date`` for one after ``latest_date()``."""
    return {
        "invalid_date": pl.any_horizontal(day < pl.lit(EARLIEST_DATE) for day in days).fill_null(False),
        "future_date": pl.any_horizontal(day > pl.lit(latest_date()) for day in days).fill_null(False),
    }


def read_date(value: pl.Expr) -> pl.Expr:
    """A date from any of the agencies' formats, whatever its year; timestamps keep their date part.

    A two-digit year from 50 on is in the 1900s (chrono reads 00-68 as 20xx: a 1968 inspection would
    become 2068), so ``%y`` dates cover 1950-2049.
    """
    # The first word, less an ISO time (``T`` and a digit: the T of ``05-OCT-2009`` stays).
    date_part = value.str.strip_chars().str.extract(r"^(\S+?)(?:T(?:\d\S*)?)?(?:\s|$)")
    parsed = []
    for shape, fmt in DATE_FORMATS.items():
        day = date_part.str.to_date(fmt, strict=False)
        if "%y" in fmt:
            day = (
                pl.when(day.dt.year() >= TWO_DIGIT_YEAR_PIVOT + 100)
                .then(day.dt.offset_by("-100y"))
                .otherwise(day)
            )
        parsed.append(pl.when(date_part.str.contains(shape)).then(day))
    return pl.coalesce(parsed)


def state_code(value: pl.Expr) -> pl.Expr:
    """USPS code from a full name or a code; null when unknown."""
    upper = value.str.strip_chars().str.to_uppercase()
    by_name = upper.replace_strict(USPS_STATES, default=None, return_dtype=pl.String)
    by_code = pl.when(upper.is_in(USPS_CODES)).then(upper)
    return pl.coalesce(by_name, by_code)


def zip5(value: pl.Expr) -> pl.Expr:
    """Five-digit ZIP, zero-padded (sources drop leading zeros); ZIP+4 keeps its first five."""
    text = value.str.strip_chars()
    digits = pl.coalesce(
        text.str.extract(r"^(\d{3,5})(?:\.0+)?(?:-\d{4})?$"),
        # ZIP+4 written without its dash (or read as a number that lost a leading zero).
        text.str.extract(r"^(\d{4,5})\d{4}$"),
    )
    return digits.str.zfill(5)


def money(value: pl.Expr) -> pl.Expr:
    """Decimal amount from text such as ``$44,681`` or ``55000.0``; null when blank or unreadable.

    Decimal all the way (cents rounded half to even): through a float, ``1.005`` came out 1.00 and
    one ``NaN`` or 19-digit amount failed the whole batch's cast to decimal(18, 2). A negative amount
    or one above MAX_PENALTY is unreadable too (null; ``unreadable`` flags it).
    """
    cleaned = value.str.replace_all(r"[$,\s]", "")
    # 18 decimals hold any amount's digits: rounding once, not at 6 and then 2 (1.0050001 is 1.01).
    amount = cleaned.cast(pl.Decimal(38, 18), strict=False)
    return pl.when(amount.is_between(0, MAX_PENALTY)).then(amount.round(2).cast(pl.Decimal(18, 2)))


def unreadable(value: pl.Expr, parsed: pl.Expr) -> pl.Expr:
    """The source has a value that its parser could not read (e.g. a penalty of ``N/A``): a quality flag."""
    return value.str.strip_chars().ne("").fill_null(False) & parsed.is_null()


def flag(value: pl.Expr) -> pl.Expr:
    """Boolean from the ``1.00``/``0.00`` style flags (a count above zero is true)."""
    return value.cast(pl.Float64, strict=False).fill_null(0) > 0


def quality_flags(checks: dict[str, pl.Expr]) -> pl.Expr:
    """List of the names whose check is true, e.g. ``["missing_coordinates"]``.

    The checks form a bit mask that picks one of the 2^n possible lists: building a list per row
    was a fifth of a historical batch's normalization.
    """
    if not checks:
        return pl.lit([], dtype=pl.List(pl.String))
    names = list(checks)
    lists = pl.Series(
        [[name for bit, name in enumerate(names) if mask >> bit & 1] for mask in range(1 << len(names))],
        dtype=pl.List(pl.String),
    )
    mask = pl.sum_horizontal(
        pl.when(check).then(pl.lit(1 << bit, pl.UInt32)).otherwise(pl.lit(0, pl.UInt32))
        for bit, check in enumerate(checks.values())
    )
    return pl.lit(lists).gather(mask)


def reject_when(conditions: dict[str, pl.Expr]) -> pl.Expr:
    """The first reason whose condition holds, else null."""
    expr = pl.lit(None, dtype=pl.String)
    for reason, condition in reversed(list(conditions.items())):
        expr = pl.when(condition).then(pl.lit(reason)).otherwise(expr)
    return expr


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Exactly the normalized columns, in order and type (missing ones as null)."""
    return frame.select(
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in NORMALIZED_SCHEMA.items()
    )


def _with_quality(frame: pl.DataFrame, generic: dict[str, pl.Expr]) -> pl.DataFrame:
    """Merged ``quality_issues`` (source flags + generic ones, deduplicated) and ``quality_score``.

    List operations are slow per row, but a frame holds few distinct combinations of flags: they are
    computed once per combination and joined back.
    """
    keys = {"_issues_key": pl.col("quality_issues").fill_null([]).list.join("\x1f")}
    keys |= {f"_is_{name}": check for name, check in generic.items()}
    keyed = frame.select(**keys)
    source = pl.col("_issues_key").str.split("\x1f").list.filter(pl.element() != "")
    issues = pl.concat_list(
        source, quality_flags({name: pl.col(f"_is_{name}") for name in generic})
    ).list.unique(maintain_order=True)
    penalty = issues.list.eval(
        pl.element().replace_strict(QUALITY_WEIGHTS, default=DEFAULT_QUALITY_WEIGHT, return_dtype=pl.Float64)
    ).list.sum()
    combos = keyed.unique().with_columns(
        quality_issues=issues, quality_score=(1.0 - penalty).clip(0.0, 1.0).round(4)
    )
    # Only the keys go through the join: the wide frame gets two columns, it is not copied.
    quality = keyed.join(combos, on=list(keys), how="left", maintain_order="left")
    return frame.with_columns(quality.get_column("quality_issues"), quality.get_column("quality_score"))


def finalize(frame: pl.DataFrame, agency: str, dataset: str) -> pl.DataFrame:
    """Add the columns every source shares: ids, entity key, generic quality, hash."""
    generic = {
        "missing_company": pl.col("company_name").is_null(),
        # Another script gets a transliterated slug, punctuation none: both need a look.
        "unreadable_company_name": unreadable_name(pl.col("company_name")).fill_null(False),
        "unknown_state": pl.col("state").is_null(),
        "missing_coordinates": pl.col("latitude").is_null() | pl.col("longitude").is_null(),
        "invalid_zip": pl.col("zip").is_null(),
        "missing_city": pl.col("city").is_null(),
        "missing_naics": pl.col("naics_code").is_null(),
    }
    content = pl.concat_str(
        [pl.col(c).cast(pl.String).fill_null("\x00") for c in HASHED_COLUMNS], separator="\x1f"
    )
    # Entity resolution works on the frame's unique names (and adds its evidence to the details).
    resolved = resolve_companies(frame).with_columns(
        # DESIGN: penalties are "null when none"; sources write none as 0 (OSHA 0.00, FAA 0 DOLLARS).
        *(pl.when(pl.col(c) != 0).then(pl.col(c)).alias(c) for c in ("penalty_amount", "initial_penalty")),
        violation_id=pl.lit(f"{agency}:{dataset}:") + pl.col("source_id"),
        agency=pl.lit(agency),
        dataset=pl.lit(dataset),
    )
    # xxh3-128 (polars-hash: stable across versions), as a decimal string: change detection needs no
    # cryptographic hash, and a cryptographic one costs a large share of a load (bench/RESULTS.md).
    record_hash = content.nchash.xxh3_128().cast(pl.String)
    return _with_quality(resolved, generic).with_columns(record_hash=record_hash)
