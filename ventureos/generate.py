"""Synthetic OSHA enforcement data shaped like the DOL catalog (osha_inspection + osha_violation CSVs).

For tests and scale runs: deterministic for a seed, vectorized (Polars hashes as the random source),
written in chunks so memory stays flat at any size. The quirks are the real ones seen in the samples:
company-name variants and typos, skewed penalties, blanks, yyyymmdd and ISO dates across decades,
ZIP codes that lost their leading zero, and a share of deleted violations (``delete_flag = D``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl

# Real establishment names from the samples (osha_convenience_filtered.csv, osha-inspection-nys.csv).
COMPANIES = (
    "KROGER", "WAL-MART STORES", "WALGREENS", "PIGGLY WIGGLY ALABAMA DISTRIBUTING", "SIMPLY FOOD L.I.C",
    "DOLLAR GENERAL", "7-ELEVEN", "CIRCLE K STORES", "SPEEDWAY", "PUBLIX SUPER MARKETS", "SAFEWAY",
    "UNITED PARCEL SERVICE", "HOME DEPOT U.S.A.", "LOWE'S HOME CENTERS", "TARGET", "AMAZON.COM SERVICES",
    "TYSON FOODS", "PILGRIM'S PRIDE", "SMITHFIELD PACKING", "CARGILL MEAT SOLUTIONS", "DOLLAR TREE",
    "NYSOPWDD", "UTICA CITY SD", "TURNER CONSTRUCTION", "BECHTEL", "FLUOR DANIEL", "SKANSKA USA BUILDING",
    "ACME ROOFING", "ALL STAR FRAMING", "GREAT LAKES DREDGE & DOCK", "US POSTAL SERVICE", "SYSCO",
)  # fmt: skip
SUFFIXES = ("", " INC", ", INC.", " LLC", ", LLC", " CO", " CORP", " CORPORATION", " (THE)", " CO INC")
CITIES = (
    ("NEW YORK", "NY", "10001"), ("BUFFALO", "NY", "14201"), ("AUSTIN", "TX", "78701"),
    ("HOUSTON", "TX", "77002"), ("MEMPHIS", "TN", "38103"), ("BIRMINGHAM", "AL", "35203"),
    ("JACKSON", "MS", "39201"), ("NEWARK", "NJ", "07102"), ("BOSTON", "MA", "02108"),
    ("HARTFORD", "CT", "06103"), ("CHICAGO", "IL", "60601"), ("DENVER", "CO", "80202"),
    ("LOS ANGELES", "CA", "90012"), ("SEATTLE", "WA", "98101"), ("MIAMI", "FL", "33130"),
    ("ATLANTA", "GA", "30303"), ("SAN JUAN", "PR", "00901"), ("PORTLAND", "ME", "04101"),
)  # fmt: skip
STREETS = ("MAIN ST", "BROADWAY", "INDUSTRIAL PKWY", "OAK AVE", "RIVER RD", "HIGHWAY 61", "1ST AVE")
NAICS = ("445110", "447110", "452311", "236220", "238160", "311615", "493110", "623210", "611110")
STANDARDS = (
    "19100147 C04 I", "19100212 A01", "19101200 E01", "19260501 B01", "19260451 G01", "5A0001",
    "19100305 G02 IV", "19100178 L01 I", "19260100 A", "19040039 A01",
)  # fmt: skip
VIOL_TYPES = ("S",) * 14 + ("O",) * 8 + ("R",) + ("W",)  # serious most often, willful rarest
INSP_TYPES = tuple("ABCDFHIJKLM")

INSPECTION_COLUMNS = (
    "activity_nr", "reporting_id", "state_flag", "estab_name", "site_address", "site_city", "site_state",
    "site_zip", "owner_type", "owner_code", "adv_notice", "safety_hlth", "sic_code", "naics_code",
    "insp_type", "insp_scope", "why_no_insp", "union_status", "open_date", "case_mod_date",
    "close_conf_date", "close_case_date", "nr_in_estab", "ld_dt",
)  # fmt: skip
VIOLATION_COLUMNS = (
    "activity_nr", "citation_id", "delete_flag", "standard", "viol_type", "issuance_date", "abate_date",
    "abate_complete", "current_penalty", "initial_penalty", "contest_date", "final_order_date",
    "nr_instances", "nr_exposed", "rec", "gravity", "emphasis", "hazcat", "fta_insp_nr",
    "fta_issuance_date", "fta_penalty", "fta_contest_date", "fta_final_order_date", "hazsub1", "load_dt",
)  # fmt: skip

VIOLATIONS_PER_INSPECTION = 2.6  # the catalog's ratio: ~13 million violations / ~5 million inspections
CHUNK_INSPECTIONS = 200_000
FIRST_ACTIVITY_NR = 100_000_000


@dataclass(frozen=True)
class Generated:
    inspection_files: list[Path]
    violation_files: list[Path]
    violations: int
    deleted: int
    """Violations with ``delete_flag = D``: a fresh load keeps ``violations - deleted`` live rows."""


def _uniform(seed: int) -> pl.Expr:
    """A deterministic uniform [0, 1) value per row, from the row's ``i`` and the seed."""
    return pl.col("i").hash(seed).cast(pl.Float64) / 2.0**64


def _pick(options: tuple[str, ...], seed: int) -> pl.Expr:
    index = (pl.col("i").hash(seed) % len(options)).cast(pl.Int64)
    return pl.lit(pl.Series(options)).gather(index)


def _when(probability: float, seed: int) -> pl.Expr:
    return _uniform(seed) < probability


def _yyyymmdd(days: pl.Expr) -> pl.Expr:
    return pl.lit(0).cast(pl.Date).dt.offset_by(days.cast(pl.String) + "d").dt.strftime("%Y%m%d")


def _company(seed: int) -> pl.Expr:
    """One of the real names with legal-suffix, store-number, case, spacing and typo variants."""
    base = _pick(COMPANIES, seed) + _pick(SUFFIXES, seed + 1)
    store = pl.when(_when(0.25, seed + 2)).then(
        pl.lit(" #") + (pl.col("i").hash(seed + 3) % 9000 + 10).cast(pl.String)
    )
    name = pl.concat_str(base, store, ignore_nulls=True)
    prefix = pl.when(_when(0.03, seed + 4)).then(pl.format("0{}-", pl.col("i") % 900 + 100))
    name = pl.concat_str(prefix, name, ignore_nulls=True)
    typo = name.str.replace(r"([AEIOU])", "${1}${1}")  # a doubled vowel, as typed in the field
    name = pl.when(_when(0.04, seed + 5)).then(typo).otherwise(name)
    name = pl.when(_when(0.2, seed + 6)).then(name.str.to_titlecase()).otherwise(name)
    return pl.when(_when(0.05, seed + 7)).then(pl.lit("  ") + name + " ").otherwise(name).str.slice(0, 50)


def inspections_frame(
    first: int, count: int, seed: int, first_activity_nr: int = FIRST_ACTIVITY_NR
) -> pl.DataFrame:
    """Inspections ``first .. first+count-1`` (index ``i``), open dates from 1972 to 2024."""
    city = (pl.col("i").hash(seed + 20) % len(CITIES)).cast(pl.Int64)
    open_days = 730 + (_uniform(seed + 21) ** 0.6 * 19_300).cast(pl.Int64)  # 1972 .. 2024, more recent
    zip_code = pl.lit(pl.Series([c[2] for c in CITIES])).gather(city)
    frame = pl.DataFrame({"i": pl.int_range(first, first + count, eager=True)}).with_columns(
        activity_nr=(pl.col("i") + first_activity_nr).cast(pl.String),
        reporting_id=pl.format("0{}", 100_000 + pl.col("i").hash(seed + 22) % 900_000),
        state_flag=_pick(("F", "S"), seed + 23),
        estab_name=pl.when(_when(0.003, seed + 24)).then(pl.lit(None)).otherwise(_company(seed)),
        site_address=pl.format("{} {}", pl.col("i").hash(seed + 25) % 9999 + 1, _pick(STREETS, seed + 26)),
        site_city=pl.lit(pl.Series([c[0] for c in CITIES])).gather(city),
        site_state=pl.when(_when(0.01, seed + 27))
        .then(pl.lit(""))
        .otherwise(pl.lit(pl.Series([c[1] for c in CITIES])).gather(city)),
        site_zip=pl.when(_when(0.15, seed + 28))
        .then(zip_code.str.strip_chars_start("0"))
        .otherwise(zip_code),
        owner_type=_pick(("A", "A", "A", "B", "C", "D"), seed + 29),
        owner_code=pl.lit(""),
        adv_notice=_pick(("N", "N", "Y", ""), seed + 30),
        safety_hlth=_pick(("S", "H"), seed + 31),
        sic_code=pl.when(_when(0.5, seed + 32)).then(pl.lit("5411")).otherwise(pl.lit("")),
        naics_code=pl.when(_when(0.08, seed + 33)).then(pl.lit("")).otherwise(_pick(NAICS, seed + 34)),
        insp_type=_pick(INSP_TYPES, seed + 35),
        insp_scope=_pick(("A", "B", "C", "D"), seed + 36),
        why_no_insp=pl.lit(""),
        union_status=_pick(("N", "Y", "B", ""), seed + 37),
        open_date=_yyyymmdd(open_days),
        case_mod_date=_yyyymmdd(open_days + 200),
        close_conf_date=_yyyymmdd(open_days + 30),
        close_case_date=pl.when(_when(0.1, seed + 38)).then(pl.lit("")).otherwise(_yyyymmdd(open_days + 365)),
        nr_in_estab=(pl.col("i").hash(seed + 39) % 500 + 1).cast(pl.String),
        ld_dt=pl.lit("2024-06-01 03:12:44 EST"),
        _open_days=open_days,
    )
    return frame


def violations_frame(inspections: pl.DataFrame, counts: pl.Series, first_row: int, seed: int) -> pl.DataFrame:
    """``counts[k]`` violations for the k-th inspection, in inspection order (as the catalog dumps)."""
    parents = inspections.select("activity_nr", "_open_days").with_columns(n=counts).filter(pl.col("n") > 0)
    exploded = parents.with_columns(item=pl.int_ranges(1, pl.col("n") + 1)).explode("item").drop("n")
    initial = (
        (
            (-2.0 * _uniform(seed + 50).clip(1e-12, 1).log()).sqrt()
            * (2 * math.pi * _uniform(seed + 51)).cos()
            * 1.3
            + 7.0
        )
        .exp()
        .round(0)
        .clip(0, 1_500_000)
    )  # log-normal: most a few thousand dollars, a long tail of six-figure penalties
    current = pl.when(_when(0.4, seed + 52)).then((initial * 0.5).round(0)).otherwise(initial)
    issuance = pl.col("_open_days") + (pl.col("i").hash(seed + 53) % 180 + 10).cast(pl.Int64)
    issuance_text = _yyyymmdd(issuance)
    iso = pl.lit(0).cast(pl.Date).dt.offset_by(issuance.cast(pl.String) + "d").dt.strftime("%Y-%m-%d")
    money = "{}.00"
    return exploded.with_columns(i=pl.int_range(first_row, first_row + pl.len())).select(
        "activity_nr",
        citation_id=pl.concat_str(
            ((pl.col("item") - 1) // 20 + 1).cast(pl.String).str.zfill(2),
            ((pl.col("item") - 1) % 20 + 1).cast(pl.String).str.zfill(3),
            pl.when(_when(0.05, seed + 54)).then(pl.lit("A")).otherwise(pl.lit("")),
        ),
        delete_flag=pl.when(_when(0.02, seed + 55)).then(pl.lit("D")).otherwise(pl.lit("")),
        standard=_pick(STANDARDS, seed + 56),
        viol_type=_pick(VIOL_TYPES, seed + 57),
        issuance_date=pl.when(_when(0.03, seed + 58))
        .then(pl.lit(""))
        .when(_when(0.1, seed + 59))
        .then(iso)
        .otherwise(issuance_text),
        abate_date=_yyyymmdd(issuance + 30),
        abate_complete=_pick(("X", "X", "Q", "I", "E", ""), seed + 60),
        current_penalty=pl.when(_when(0.1, seed + 61))
        .then(pl.lit(""))
        .otherwise(pl.format(money, current.cast(pl.Int64))),
        initial_penalty=pl.when(_when(0.1, seed + 61))
        .then(pl.lit(""))
        .otherwise(pl.format(money, initial.cast(pl.Int64))),
        contest_date=pl.when(_when(0.08, seed + 62)).then(_yyyymmdd(issuance + 15)).otherwise(pl.lit("")),
        final_order_date=_yyyymmdd(issuance + 60),
        nr_instances=(pl.col("i").hash(seed + 63) % 5 + 1).cast(pl.String),
        nr_exposed=(pl.col("i").hash(seed + 64) % 40 + 1).cast(pl.String),
        rec=_pick(("", "", "A", "C", "R"), seed + 65),
        gravity=pl.format("{}", pl.col("i").hash(seed + 66) % 10 + 1).str.zfill(2),
        emphasis=_pick(("", "", "", "X"), seed + 67),
        hazcat=_pick(("", "", "SAFETY", "HEALTH", "FALL"), seed + 68),
        fta_insp_nr=pl.lit(""),
        fta_issuance_date=pl.lit(""),
        fta_penalty=pl.lit(""),
        fta_contest_date=pl.lit(""),
        fta_final_order_date=pl.lit(""),
        hazsub1=_pick(("", "", "", "", "1250", "0730"), seed + 69),
        load_dt=pl.lit("2024-06-01 03:12:44 EST"),
    )


def inspection_counts(violations: int, seed: int) -> pl.Series:
    """Violations per inspection (1..8, skewed towards few) summing to exactly ``violations``."""
    estimate = math.ceil(violations / VIOLATIONS_PER_INSPECTION) + 16
    # 1 + floor(8 u^3): mean 2.63, most inspections with one or two citations, at most 8.
    uniform = (pl.int_range(estimate).hash(seed + 90) % 1000).cast(pl.Float64) / 1000
    counts = pl.select(n=(1 + (8 * uniform.pow(3)).floor()).cast(pl.Int64)).to_series()
    while counts.sum() < violations:
        counts = pl.concat([counts, counts])
    total = counts.cum_sum()
    keep = int((total < violations).sum()) + 1
    counts = counts.head(keep)
    return counts.scatter(keep - 1, counts[keep - 1] - (int(counts.sum()) - violations))


def _blank(frame: pl.DataFrame) -> pl.DataFrame:
    """Empty values as empty fields (the catalog's CSVs do not quote them)."""
    return frame.select(pl.when(pl.all() != "").then(pl.all()))


def generate_osha_enforcement(
    rows: int, out: Path, files: int = 1, seed: int = 42, first_activity_nr: int = FIRST_ACTIVITY_NR
) -> Generated:
    """Write ``files`` inspection and violation CSVs holding ``rows`` violations in total.

    ``first_activity_nr`` numbers the inspections: distinct ranges give disjoint data sets.
    """
    if rows <= 0 or files <= 0:
        raise ValueError("rows and files must be positive")
    out.mkdir(parents=True, exist_ok=True)
    counts = inspection_counts(rows, seed)
    per_file = math.ceil(counts.len() / files)
    inspection_files, violation_files, deleted, first_row = [], [], 0, 0
    for f in range(files):
        suffix = f"_{f + 1:03d}" if files > 1 else ""
        insp_path, viol_path = out / f"osha_inspection{suffix}.csv", out / f"osha_violation{suffix}.csv"
        with insp_path.open("wb") as insp_out, viol_path.open("wb") as viol_out:
            start, stop = f * per_file, min((f + 1) * per_file, counts.len())
            for chunk in range(start, stop, CHUNK_INSPECTIONS):
                n = min(CHUNK_INSPECTIONS, stop - chunk)
                inspections = inspections_frame(chunk, n, seed, first_activity_nr)
                violations = violations_frame(inspections, counts.slice(chunk, n), first_row, seed)
                first_row += violations.height
                deleted += int((violations["delete_flag"] == "D").sum())
                header = chunk == start
                _blank(inspections.select(INSPECTION_COLUMNS)).write_csv(insp_out, include_header=header)
                _blank(violations.select(VIOLATION_COLUMNS)).write_csv(viol_out, include_header=header)
        inspection_files.append(insp_path)
        violation_files.append(viol_path)
    return Generated(inspection_files, violation_files, first_row, deleted)
