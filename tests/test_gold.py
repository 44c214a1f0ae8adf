"""Gold on a real SQLite-catalog Iceberg lakehouse: exact under inserts, updates, deletes and moves."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from normalizers import normalize
from ventureos.bronze import read_raw_batch
from ventureos.gold import (
    LEVELS,
    PLACE_SPEC,
    SPECS,
    YEAR_SPECS,
    aggregate_levels,
    aggregate_tables,
    entity_rows,
    gold_table,
    read_gold,
    read_removals,
    read_table,
    rebuild_gold_tables,
    update_gold_tables,
)
from ventureos.lakehouse import current_lakehouse
from ventureos.silver import Scd2Plan, commit_scd2, current_versions, encode_versions, plan_scd2

from .conftest import BUNDLED_SAMPLES

T1, T2, T3 = (datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3))


def real_rows(n: int) -> pl.DataFrame:
    reports = pl.read_csv(
        BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False
    ).head(n)
    raw = read_raw_batch(
        [("s3://lake/bronze/daily/osha/severe_injury/2015-01-01/a.csv", reports.write_csv().encode())]
    )
    return normalize(raw.frame, "osha", "severe_injury").filter(pl.col("reject_reason").is_null())


def edit(frame: pl.DataFrame, source_id: str, **values: object) -> pl.DataFrame:
    """Change columns of one row; its record hash changes with them (a new version of the record)."""
    hit = pl.col("source_id") == source_id
    changes = [
        pl.when(hit).then(pl.lit(v, dtype=frame.schema[c])).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    ]
    tag = pl.lit("|" + repr(sorted(values.items())))
    return frame.with_columns(
        *changes, record_hash=pl.when(hit).then(pl.col("record_hash") + tag).otherwise("record_hash")
    )


def apply(incoming: pl.DataFrame, now: datetime) -> Scd2Plan:
    lakehouse = current_lakehouse()
    table = lakehouse.violations()
    plan = plan_scd2(incoming, current_versions(table, incoming["violation_id"].to_list()), now, "run")
    commit_scd2(table, plan, encode_versions(table, plan))
    update_gold_tables(lakehouse.catalog, table, plan, now)
    return plan


def current_silver() -> pl.DataFrame:
    rows = pl.from_arrow(current_lakehouse().violations().scan().to_arrow())
    return rows.filter("is_current")


def assert_gold_equals_current_silver() -> None:
    """Every gold table (stats, year stats, place companies) equals the aggregate of current silver."""
    aggregates = aggregate_tables(current_silver(), SPECS, T1)
    for spec in SPECS:
        order = list(spec.row_key)
        expected = aggregates[spec.identifier].drop("updated_at").sort(order)
        got = read_table(current_lakehouse().catalog, spec).drop("updated_at").sort(order)
        assert_frame_equal(got, expected)


def stats(level: str, key: str) -> dict[str, dict[str, object]]:
    rows = read_gold(current_lakehouse().catalog, level).filter(pl.col("entity_key") == key)
    return {r.pop("agency"): r for r in rows.drop("entity_key").to_dicts()}


def commits(level: str) -> int:
    return len(gold_table(current_lakehouse().catalog, level).metadata.metadata_log)


def test_gold_follows_inserts_updates_deletes_exactly(home: Path) -> None:
    base = real_rows(40)
    ids = base["source_id"].to_list()
    acme = {"company_slug": "acme", "company_name": "Acme", "state": "TX", "city": "AUSTIN"}
    base = edit(base, ids[1], **acme, event_date=date(2015, 1, 5), penalty_amount=Decimal("1000.00"))
    base = edit(base, ids[2], **acme, event_date=date(2015, 2, 10), penalty_amount=Decimal("2500.50"))
    base = edit(base, ids[3], **acme, event_date=date(2015, 3, 15))
    base = edit(base, ids[6], company_slug=None)  # an individual: no company entity
    base = edit(base, ids[7], state=None)  # no state: neither state nor city stats
    faa = edit(
        base.filter(pl.col("source_id") == ids[5]),
        ids[5],
        **acme,
        event_date=date(2015, 6, 1),
        penalty_amount=Decimal("10000.00"),
    )
    faa = faa.with_columns(
        agency=pl.lit("faa"), dataset=pl.lit("actions"), violation_id=pl.lit(f"faa:actions:{ids[5]}")
    )
    first = pl.concat([base, faa])
    apply(first, T1)

    assert_gold_equals_current_silver()
    acme_t1 = stats("company", "COMPANY#acme")
    assert {a: (s["violation_count"], s["penalty_total"]) for a, s in acme_t1.items()} == {
        "osha": (3, Decimal("3500.50")),
        "faa": (1, Decimal("10000.00")),
        "all": (4, Decimal("13500.50")),
    }
    assert (acme_t1["all"]["first_event_date"], acme_t1["all"]["last_event_date"]) == (
        date(2015, 1, 5),
        date(2015, 6, 1),
    )
    assert acme_t1["all"]["entity_name"] == "Acme"
    naics = dict(first.select("violation_id", "naics_code").iter_rows())
    assert acme_t1["all"]["industry"] == naics[f"faa:actions:{ids[5]}"]  # of the latest violation
    assert acme_t1["osha"]["industry"] == naics[f"osha:severe_injury:{ids[3]}"]
    assert stats("city", "CITY#austin-tx")["all"]["violation_count"] == 4
    individual = first.filter(pl.col("source_id") == ids[6])
    assert individual["company_slug"].item() is None
    state_of_individual = f"STATE#{individual['state'].item().lower()}"
    assert (
        stats("state", state_of_individual)["all"]["violation_count"]
        == current_silver().filter(pl.col("state") == individual["state"].item()).height
    )
    company_sizes = (
        read_gold(current_lakehouse().catalog, "company")
        .filter(pl.col("agency") == "all")["violation_count"]
        .sum()
    )
    assert company_sizes == first.height - 1  # every row but the individual's
    lone_company = first.filter(pl.col("source_id") == ids[10])["company_slug"].item()
    assert stats("company", f"COMPANY#{lone_company}")["all"]["violation_count"] == 1
    before = {level: commits(level) for level in LEVELS}

    # Next delivery: a reduced penalty, the earliest violation withdrawn, one moved to another company,
    # and the only violation of a company withdrawn.
    second = edit(base, ids[2], penalty_amount=Decimal("500.00"))
    second = edit(second, ids[3], company_slug="globex", company_name="Globex")
    second = second.with_columns(is_deleted=pl.col("source_id").is_in([ids[1], ids[10]]))
    plan = apply(second, T2)
    assert plan.counts["updated"].sum() == 2 and plan.counts["deleted"].sum() == 2

    assert_gold_equals_current_silver()
    acme_t2 = stats("company", "COMPANY#acme")
    assert (acme_t2["osha"]["violation_count"], acme_t2["osha"]["penalty_total"]) == (1, Decimal("500.00"))
    assert acme_t2["osha"]["first_event_date"] == acme_t2["osha"]["last_event_date"] == date(2015, 2, 10)
    assert (acme_t2["all"]["violation_count"], acme_t2["all"]["penalty_total"]) == (2, Decimal("10500.00"))
    assert acme_t2["all"]["first_event_date"] == date(2015, 2, 10)
    # Unchanged stats keep their timestamp: gold-sync has nothing to push for them.
    assert acme_t2["faa"]["updated_at"] == T1 and acme_t2["osha"]["updated_at"] == T2
    assert stats("company", "COMPANY#globex")["osha"]["violation_count"] == 1
    assert stats("company", f"COMPANY#{lone_company}") == {}
    removals = read_removals(current_lakehouse().catalog).filter(
        pl.col("entity_key").str.starts_with("COMPANY#")
    )
    assert sorted(removals.select("entity_key", "agency").rows()) == [
        (f"COMPANY#{lone_company}", "all"),
        (f"COMPANY#{lone_company}", "osha"),
    ]
    assert removals["removed_at"].to_list() == [T2, T2]
    # One commit per gold table for the batch.
    assert {level: commits(level) - before[level] for level in LEVELS} == dict.fromkeys(LEVELS, 1)

    # The same delivery again: nothing to do, no commit anywhere.
    again = apply(second, T3)
    assert again.is_noop
    assert {level: commits(level) - before[level] for level in LEVELS} == dict.fromkeys(LEVELS, 1)
    assert read_gold(current_lakehouse().catalog, "company", since=T2).is_empty()
    assert set(read_gold(current_lakehouse().catalog, "company", since=T1)["entity_key"]) == {
        "COMPANY#acme",
        "COMPANY#globex",
    }


def test_rebuild_repairs_a_batch_whose_gold_update_was_lost(home: Path) -> None:
    rows = real_rows(25)
    apply(rows, T1)
    lakehouse = current_lakehouse()
    # A crash between the silver and the gold commit: silver moved on, gold did not.
    ids = rows["source_id"].to_list()
    lost = edit(rows, ids[0], penalty_amount=Decimal("75.25")).with_columns(
        is_deleted=pl.col("source_id") == ids[1]
    )
    table = lakehouse.violations()
    closing = plan_scd2(lost, current_versions(table, lost["violation_id"].to_list()), T2, "run")
    commit_scd2(table, closing, encode_versions(table, closing))
    company = f"COMPANY#{rows['company_slug'][0]}"
    assert stats("company", company)["all"]["penalty_total"] == Decimal("0.00")

    changes = {c.level: c for c in rebuild_gold_tables(lakehouse.catalog, table, T3)}
    assert_gold_equals_current_silver()
    assert stats("company", company)["all"]["penalty_total"] == Decimal("75.25")
    assert stats("company", company)["all"]["updated_at"] == T3
    assert changes["company"].removed >= 2  # the deleted violation's company: its osha and all rows
    before = {level: commits(level) for level in LEVELS}
    again = rebuild_gold_tables(lakehouse.catalog, table, datetime(2024, 1, 4, tzinfo=UTC))
    assert all(c.changed == 0 and c.removed == 0 for c in again)
    assert {level: commits(level) for level in LEVELS} == before


def test_latest_name_and_industry_follow_event_date_then_violation_id() -> None:
    """Among spellings seen once each, the entity's name is its latest violation's (ties: the greater
    violation id, compared as text);
    the industry is the latest NAICS code present; rows without a date count as oldest."""
    rows = pl.DataFrame(
        {
            "violation_id": ["osha:e:1", "osha:e:10", "osha:e:2", "osha:e:3"],
            "agency": ["osha"] * 4,
            "event_date": [date(2021, 5, 1), date(2021, 5, 1), date(2020, 1, 1), None],
            "company_name": ["ACME INC", "ACME INCORPORATED", "ACME CO", "ACME LATEST?"],
            "company_slug": ["acme"] * 4,
            "city": ["AUSTIN"] * 4,
            "state": ["TX"] * 4,
            "naics_code": ["111", None, "222", "333"],
            "penalty_amount": [Decimal("1.50"), Decimal("2.00"), None, Decimal("3.25")],
        },
        schema_overrides={"penalty_amount": pl.Decimal(18, 2)},
    )
    company = aggregate_levels(rows.lazy(), ["company"], T1)["company"]
    expected = {
        "entity_name": "ACME INCORPORATED",  # same date as osha:e:1, and "osha:e:10" > "osha:e:1"
        "industry": "111",
        "violation_count": 4,
        "penalty_total": Decimal("6.75"),
        "first_event_date": date(2020, 1, 1),
        "last_event_date": date(2021, 5, 1),
    }
    for agency in ("osha", "all"):
        row = company.filter(pl.col("agency") == agency).row(0, named=True)
        assert {k: row[k] for k in expected} == expected


def display_names(
    rows: list[tuple[str, str, date, str, str]], level: str = "company"
) -> dict[str, dict[str, str]]:
    """``{entity_key: {agency: entity_name}}`` of rows ``(violation_id, agency, event_date, name, slug)``."""
    frame = pl.DataFrame(
        rows,
        schema=["violation_id", "agency", "event_date", "company_name", "company_slug"],
        orient="row",
    ).with_columns(
        city=pl.lit("AUSTIN"), state=pl.lit("TX"), naics_code=pl.lit(None, pl.String),
        penalty_amount=pl.lit(Decimal("1.00"), pl.Decimal(18, 2)),
    )  # fmt: skip
    gold = aggregate_levels(frame.lazy(), [level], T1)[level]
    names: dict[str, dict[str, str]] = {}
    for key, agency, name in gold.select("entity_key", "agency", "entity_name").iter_rows():
        names.setdefault(key, {})[agency] = name
    return names


def test_company_display_name_is_the_curated_parent_else_the_most_frequent_clean_spelling() -> None:
    d = date(2020, 1, 1)
    names = display_names([
        # A curated parent's slug: its curated name, whatever the rows spell.
        ("osha:e:1", "osha", d, "WAL-MART STORES, LLC #3093", "walmart"),
        ("osha:e:2", "osha", d, "WAL-MART STORES, LLC #3093", "walmart"),
        ("epa:x:1", "epa", date(2021, 1, 1), "Wal-Mart Stores East, LP", "walmart"),
        # Site numbers dropped before counting: ZETA FOODS is spelled 3 times, the latest once.
        ("osha:e:3", "osha", d, "ZETA FOODS #1", "zeta-foods"),
        ("osha:e:4", "osha", d, "ZETA FOODS  #22", "zeta-foods"),
        ("faa:a:1", "faa", date(2020, 5, 1), "ZETA FOODS", "zeta-foods"),
        ("faa:a:2", "faa", date(2020, 6, 1), "Zeta Foods Inc", "zeta-foods"),
        # Once each: the latest spelling wins.
        ("osha:e:5", "osha", date(2019, 1, 1), "Omega Tools Co", "omega-tools"),
        ("osha:e:6", "osha", date(2019, 2, 1), "OMEGA TOOLS", "omega-tools"),
    ])  # fmt: skip
    assert names == {
        "COMPANY#walmart": {"osha": "Walmart", "epa": "Walmart", "all": "Walmart"},
        "COMPANY#zeta-foods": {"osha": "ZETA FOODS", "faa": "Zeta Foods Inc", "all": "ZETA FOODS"},
        "COMPANY#omega-tools": {"osha": "OMEGA TOOLS", "all": "OMEGA TOOLS"},
    }
    # Cities: the most frequent spelling too.
    cities = display_names([
        ("osha:e:1", "osha", d, "A", "a"), ("osha:e:2", "osha", d, "B", "b"),
    ], level="city")  # fmt: skip
    assert cities == {"CITY#austin-tx": {"osha": "AUSTIN, TX", "all": "AUSTIN, TX"}}


def year_rows(level: str, key: str) -> dict[tuple[str, int | None, str], tuple[int, Decimal]]:
    spec = YEAR_SPECS[LEVELS.index(level)]
    rows = read_table(current_lakehouse().catalog, spec, [key])
    return {(a, y, s): (n, p) for _, a, y, s, n, p, _ in rows.iter_rows()}


def place_rows(place: str) -> dict[tuple[str, str], tuple[str, int, Decimal]]:
    rows = read_table(current_lakehouse().catalog, PLACE_SPEC, [place])
    return {(c, a): (name, n, p) for _, c, a, name, n, p, _ in rows.iter_rows()}


def test_year_stats_and_place_companies_follow_updates_moves_and_deletes(home: Path) -> None:
    base = real_rows(12)
    ids = base["source_id"].to_list()
    acme = {"company_slug": "acme", "company_name": "Acme", "state": "TX", "city": "AUSTIN"}
    base = edit(base, ids[0], **acme, event_date=date(2015, 1, 5), penalty_amount=Decimal("1000.00"))
    base = edit(base, ids[1], **acme, event_date=date(2016, 2, 10), penalty_amount=Decimal("2500.50"))
    base = edit(base, ids[2], **acme, event_date=date(2016, 3, 1), violation_type="willful")
    apply(base, T1)
    assert_gold_equals_current_silver()
    serious, willful = "serious", "willful"  # severe-injury reports are serious; a willful citation stays so
    expected_t1 = {
        ("osha", 2015, serious): (1, Decimal("1000.00")),
        ("osha", 2016, serious): (1, Decimal("2500.50")),
        ("osha", 2016, willful): (1, Decimal("0.00")),
    }
    expected_t1 |= {("all", *k[1:]): v for k, v in expected_t1.items()}
    assert year_rows("company", "COMPANY#acme") == expected_t1
    assert place_rows("CITY#austin-tx")[("COMPANY#acme", "all")] == ("Acme", 3, Decimal("3500.50"))
    texas_t1 = place_rows("STATE#tx")
    assert texas_t1[("COMPANY#acme", "osha")] == ("Acme", 3, Decimal("3500.50"))

    # A lower penalty, a violation moved to another state, the willful one withdrawn.
    second = edit(base, ids[0], penalty_amount=Decimal("400.00"))
    second = edit(second, ids[1], state="OK", city="TULSA")
    second = second.with_columns(is_deleted=pl.col("source_id") == ids[2])
    apply(second, T2)
    assert_gold_equals_current_silver()
    assert year_rows("company", "COMPANY#acme") == {
        ("osha", 2015, serious): (1, Decimal("400.00")),
        ("osha", 2016, serious): (1, Decimal("2500.50")),
        ("all", 2015, serious): (1, Decimal("400.00")),
        ("all", 2016, serious): (1, Decimal("2500.50")),
    }
    assert place_rows("STATE#tx")[("COMPANY#acme", "all")] == ("Acme", 1, Decimal("400.00"))
    assert place_rows("STATE#ok")[("COMPANY#acme", "all")] == ("Acme", 1, Decimal("2500.50"))
    assert place_rows("CITY#tulsa-ok") == {
        ("COMPANY#acme", "osha"): ("Acme", 1, Decimal("2500.50")),
        ("COMPANY#acme", "all"): ("Acme", 1, Decimal("2500.50")),
    }
    # Unchanged rows keep their stamp: the 2016 serious row of Acme is the same violation, same penalty.
    stamps = read_table(current_lakehouse().catalog, YEAR_SPECS[0], ["COMPANY#acme"])
    assert dict(
        stamps.select(
            pl.concat_str("agency", pl.col("year").cast(pl.String), separator="/"), "updated_at"
        ).rows()
    ) == {"osha/2015": T2, "all/2015": T2, "osha/2016": T1, "all/2016": T1}

    changes = rebuild_gold_tables(current_lakehouse().catalog, current_lakehouse().violations(), T3)
    assert all(c.changed == 0 and c.removed == 0 for c in changes)
    assert_gold_equals_current_silver()


def plain_totals(level: str) -> dict[str, tuple[int, Decimal, date | None, date | None]]:
    """Per entity of ``level`` (agency ``all``): count, penalty total and date bounds of the current
    silver rows, summed row by row here, apart from gold's grouped rollups."""
    totals: dict[str, tuple[int, Decimal, date | None, date | None]] = {}
    for row in entity_rows(current_silver(), level).iter_rows(named=True):
        n, penalty, first, last = totals.get(row["entity_key"], (0, Decimal("0.00"), None, None))
        firsts = [d for d in (first, row["event_date"]) if d is not None]
        lasts = [d for d in (last, row["event_date"]) if d is not None]
        penalty += row["penalty_amount"] or 0
        totals[row["entity_key"]] = (n + 1, penalty, min(firsts, default=None), max(lasts, default=None))
    return totals


def gold_totals(level: str) -> dict[str, tuple[int, Decimal, date | None, date | None]]:
    rows = read_gold(current_lakehouse().catalog, level).filter(pl.col("agency") == "all")
    return {
        r["entity_key"]: (
            r["violation_count"],
            r["penalty_total"],
            r["first_event_date"],
            r["last_event_date"],
        )
        for r in rows.iter_rows(named=True)
    }


def city_stats(key: str) -> dict[str, tuple[int, Decimal]]:
    return {a: (s["violation_count"], s["penalty_total"]) for a, s in stats("city", key).items()}


def test_a_partial_batch_refreshes_exactly_its_entities_and_place_company_pairs(home: Path) -> None:
    """A batch of two records (a move to another company, city and state; a delete) replaces only the
    rows of its entities: other companies of a touched place, and a touched company's other places,
    keep their rows and stamps; a company that left a place leaves its top-company list."""
    base = real_rows(8)
    ids = base["source_id"].to_list()
    zz, yy = {"state": "ZZ"}, {"state": "YY"}
    base = edit(base, ids[0], company_slug="acme", company_name="Acme", city="ZEDVILLE", **zz,
                event_date=date(2015, 1, 5), penalty_amount=Decimal("100.00"))  # fmt: skip
    base = edit(base, ids[1], company_slug="acme", company_name="Acme", city="FOOBURG", **zz,
                event_date=date(2016, 2, 10), penalty_amount=Decimal("200.00"))  # fmt: skip
    base = edit(base, ids[2], company_slug="acme", company_name="Acme", city="QUUXTON", **yy,
                event_date=date(2017, 3, 1), penalty_amount=Decimal("300.00"))  # fmt: skip
    base = edit(base, ids[3], company_slug="globex", company_name="Globex", city="ZEDVILLE", **zz,
                event_date=date(2018, 1, 1), penalty_amount=Decimal("50.00"))  # fmt: skip
    base = edit(base, ids[4], company_slug="initech", company_name="Initech", city="FOOBURG", **zz,
                event_date=date(2019, 1, 1), penalty_amount=Decimal("70.00"))  # fmt: skip
    apply(base, T1)
    assert_gold_equals_current_silver()
    assert place_rows("STATE#zz")[("COMPANY#acme", "all")] == ("Acme", 2, Decimal("300.00"))
    assert place_rows("CITY#quuxton-yy")[("COMPANY#acme", "osha")] == ("Acme", 1, Decimal("300.00"))

    # Only two records delivered: ids[0] moves to Globex in Quuxton, YY; ids[2] is withdrawn.
    delivered = base.filter(pl.col("source_id").is_in([ids[0], ids[2]]))
    moved = edit(delivered, ids[0], company_slug="globex", company_name="Globex", city="QUUXTON", **yy)
    apply(moved.with_columns(is_deleted=pl.col("source_id") == ids[2]), T2)
    assert_gold_equals_current_silver()
    for level in LEVELS:
        assert gold_totals(level) == plain_totals(level)

    acme, globex = stats("company", "COMPANY#acme")["all"], stats("company", "COMPANY#globex")["all"]
    assert (acme["violation_count"], acme["penalty_total"], acme["first_event_date"]) == (
        1, Decimal("200.00"), date(2016, 2, 10),
    )  # fmt: skip
    assert (globex["violation_count"], globex["penalty_total"]) == (2, Decimal("150.00"))
    assert (globex["first_event_date"], globex["last_event_date"]) == (date(2015, 1, 5), date(2018, 1, 1))
    assert city_stats("CITY#zedville-zz")["all"] == (1, Decimal("50.00"))
    assert city_stats("CITY#quuxton-yy")["all"] == (1, Decimal("100.00"))
    assert city_stats("CITY#fooburg-zz")["all"] == (2, Decimal("270.00"))
    assert {a: s["violation_count"] for a, s in stats("state", "STATE#zz").items()} == {"osha": 3, "all": 3}
    assert stats("state", "STATE#yy")["all"]["penalty_total"] == Decimal("100.00")

    def pairs(place: str) -> dict[str, tuple[int, Decimal, datetime]]:
        rows = read_table(current_lakehouse().catalog, PLACE_SPEC, [place]).filter(pl.col("agency") == "all")
        return {c: (n, p, at) for _, c, _, _, n, p, at in rows.iter_rows()}

    # Acme left Zedville and Quuxton; Globex's Zedville row is the same, so it keeps its stamp.
    assert pairs("CITY#zedville-zz") == {"COMPANY#globex": (1, Decimal("50.00"), T1)}
    assert pairs("CITY#quuxton-yy") == {"COMPANY#globex": (1, Decimal("100.00"), T2)}
    assert pairs("STATE#yy") == {"COMPANY#globex": (1, Decimal("100.00"), T2)}
    # Fooburg was not touched: its rows, Acme's included, are as they were.
    assert pairs("CITY#fooburg-zz") == {
        "COMPANY#acme": (1, Decimal("200.00"), T1),
        "COMPANY#initech": (1, Decimal("70.00"), T1),
    }
    # ZZ was touched, Initech was not: Initech's row there stays; Acme's lost one violation.
    assert pairs("STATE#zz") == {
        "COMPANY#acme": (1, Decimal("200.00"), T2),
        "COMPANY#globex": (1, Decimal("50.00"), T1),
        "COMPANY#initech": (1, Decimal("70.00"), T1),
    }


def test_a_rerun_after_a_crash_before_the_gold_commit_repairs_gold(home: Path) -> None:
    base = real_rows(6)
    ids = base["source_id"].to_list()
    place = {"company_slug": "acme", "company_name": "Acme", "city": "FOOBURG", "state": "ZZ"}
    base = edit(base, ids[0], **place, event_date=date(2016, 2, 10), penalty_amount=Decimal("200.00"))
    base = edit(base, ids[1], **place, event_date=date(2017, 2, 10), penalty_amount=Decimal("5.00"))
    apply(base, T1)
    # The run commits silver, then crashes before gold: the penalty is 999 in silver, 200 in gold.
    delivered = edit(base.filter(pl.col("source_id") == ids[0]), ids[0], penalty_amount=Decimal("999.00"))
    table = current_lakehouse().violations()
    lost = plan_scd2(delivered, current_versions(table, delivered["violation_id"].to_list()), T2, "run")
    commit_scd2(table, lost, encode_versions(table, lost))
    assert stats("company", "COMPANY#acme")["all"]["penalty_total"] == Decimal("205.00")

    # Its re-run changes nothing in silver; the record's entities are recomputed all the same.
    rerun = apply(delivered, T3)
    assert rerun.is_noop
    assert_gold_equals_current_silver()
    acme = stats("company", "COMPANY#acme")["all"]
    assert (acme["violation_count"], acme["penalty_total"], acme["updated_at"]) == (2, Decimal("1004.00"), T3)
    assert city_stats("CITY#fooburg-zz")["all"] == (2, Decimal("1004.00"))
    assert stats("state", "STATE#zz")["all"]["penalty_total"] == Decimal("1004.00")
    assert place_rows("STATE#zz")[("COMPANY#acme", "all")] == ("Acme", 2, Decimal("1004.00"))
    assert year_rows("company", "COMPANY#acme")[("all", 2016, "serious")] == (1, Decimal("999.00"))
    # A second re-run finds gold right: no commit.
    before = {level: commits(level) for level in LEVELS}
    apply(delivered, datetime(2024, 1, 4, tzinfo=UTC))
    assert {level: commits(level) for level in LEVELS} == before


def test_a_batch_of_records_of_no_entity_changes_no_gold_table(home: Path) -> None:
    rows = real_rows(3)
    apply(rows, T1)
    before = {level: commits(level) for level in LEVELS}
    nobody = edit(rows.head(1), rows["source_id"][0], company_slug=None, state=None)
    # The record's old version still had a company and a state: that first batch touches them.
    apply(nobody, T2)
    assert_gold_equals_current_silver()
    after_move = {level: commits(level) for level in LEVELS}
    assert after_move != before
    again = edit(nobody, rows["source_id"][0], penalty_amount=Decimal("9.99"))
    plan = apply(again, T3)
    assert plan.counts["updated"].sum() == 1
    assert update_gold_tables(current_lakehouse().catalog, current_lakehouse().violations(), plan, T3) == []
    assert {level: commits(level) for level in LEVELS} == after_move
